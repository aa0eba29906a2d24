"""promptmix: multi-task soft prompts (ATTEMPT, MPT, prompt tuning) on a frozen language model."""

__version__ = "0.1.0"
