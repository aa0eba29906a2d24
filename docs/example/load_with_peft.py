"""Load the exported adapter with PEFT's own API and score the two label words of one headline
the way promptmix scores them (rank classification: summed log-probability of each answer).

    python docs/example/load_with_peft.py runs/headlines-peft
"""

import json
import sys

import torch
from peft import PeftConfig, PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

adapter = sys.argv[1] if len(sys.argv) > 1 else "runs/headlines-peft"
config = PeftConfig.from_pretrained(adapter)
base = config.base_model_name_or_path  # for smollm2-135m: the local float32 copy of the GGUF file
tokenizer = AutoTokenizer.from_pretrained(base)
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter).eval()

# promptmix's decoder-only layout: "<input>\nAnswer:" then " <answer>" and the end-of-text token.
source = "Is this headline sarcastic? Area man bravely opens email he has ignored for six weeks"
prefix = tokenizer(source)["input_ids"] + tokenizer("\nAnswer:", add_special_tokens=False)["input_ids"]
scores = {}
for word in ["literal", "sarcastic"]:
    answer = tokenizer(" " + word, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prefix + answer])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, config.num_virtual_tokens:]  # PEFT returns the prompt's positions too
    log_probs = torch.log_softmax(logits[len(prefix) - 1:-1].float(), dim=-1)
    scores[word] = float(log_probs.gather(1, torch.tensor(answer)[:, None]).sum())
probabilities = torch.softmax(torch.tensor(list(scores.values())), dim=0).tolist()
print(json.dumps({"base_model_name_or_path": base, "label_scores": dict(zip(scores, probabilities))}))
