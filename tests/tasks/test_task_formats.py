"""Every dataset of both papers: a tiny fixture in its original release layout, loaded through
``Task.load_splits`` (the code users run), with the formatted text checked."""

from __future__ import annotations

import pytest
from taskdata import FIXTURES

from promptmix.tasks import BENCHMARKS, get_task, list_tasks

# task -> (source of the first training example, its target, its label)
FIRST_TRAIN = {
    "mnli": (
        "mnli premise: Conceptually cream skimming has two basic dimensions - product and "
        "geography. hypothesis: Product and geography are what make cream skimming work.",
        "neutral",
        "neutral",
    ),
    "qqp": (
        "qqp question1: How is the life of a math student? Could you describe your own "
        "experiences? question2: Which level of prepration is enough for the exam jlpt5?",
        "not_duplicate",
        "not_duplicate",
    ),
    "qnli": (
        "qnli question: What came into force after the new constitution was herald? sentence: "
        "As of that day, the new constitution heralding the Second Republic came into force.",
        "entailment",
        "entailment",
    ),
    "sst2": ("sst2 sentence: hide new secretions from the parental units", "negative", "negative"),
    "stsb": ("stsb sentence1: A plane is taking off. sentence2: An air plane is taking off.", "5.0", 5.0),
    "mrpc": (
        'mrpc sentence1: Amrozi accused his brother , whom he called " the witness " , of '
        'deliberately distorting his evidence . sentence2: Referring to him as only " the witness '
        '" , Amrozi accused his brother of deliberately distorting his evidence .',
        "equivalent",
        "equivalent",
    ),
    "rte": (
        "rte sentence1: No Weapons of Mass Destruction Found in Iraq Yet. sentence2: Weapons of "
        "Mass Destruction Found in Iraq.",
        "not_entailment",
        "not_entailment",
    ),
    "cola": (
        "cola sentence: Our friends won't buy this analysis, let alone the next one we propose.",
        "acceptable",
        "acceptable",
    ),
    "wnli": (
        "wnli sentence1: I stuck a pin through a carrot. When I pulled the pin out, it had a "
        "hole. sentence2: The carrot had a hole.",
        "entailment",
        "entailment",
    ),
    "boolq": (
        "boolq question: does ethanol take more energy make that produces passage: Ethanol "
        "fuel -- All biomass goes through",
        "False",
        "False",
    ),
    "cb": (
        "cb premise: It was a complex language. Not written down but handed down. One might say "
        "it was peeled down. hypothesis: the language was peeled down",
        "entailment",
        "entailment",
    ),
    "copa": (
        "copa choice1: The sun was rising. choice2: The grass was cut. premise: My body cast a "
        "shadow over the grass. question: cause",
        "choice1",
        "choice1",
    ),
    "copa-choices": (
        "copa-choices premise: My body cast a shadow over the grass. question: cause",
        "The sun was rising.",
        "The sun was rising.",
    ),
    "multirc": (
        "multirc question: What causes a change in motion? answer: A force paragraph: Sent 1: "
        "What causes a change in motion? Sent 2: The application of a force.",
        "True",
        "True",
    ),
    "record": (
        "record query: Visitors flocked to @placeholder to see the Louvre. entities: France, "
        "London, Paris passage: The Louvre in Paris drew record crowds. Paris is the capital "
        "of France. London came second",
        "Paris",
        ["Paris"],
    ),
    "record-choices": (
        "record-choices query: Visitors flocked to @placeholder to see the Louvre. entities: France, "
        "London, Paris passage: The Louvre in Paris drew record crowds. Paris is the capital "
        "of France. London came second",
        "Paris",
        ["Paris"],
    ),
    "superglue-rte": (
        "superglue-rte premise: No Weapons of Mass Destruction Found in Iraq Yet. "
        "hypothesis: Weapons of Mass Destruction Found in Iraq.",
        "not_entailment",
        "not_entailment",
    ),
    "wic": (
        "wic sentence1: Do you want to come over to my place later? sentence2: A political "
        "system with no place for the less prominent groups. word: place",
        "False",
        "False",
    ),
    "wsc": (
        "wsc text: * Mark * told Pete many lies about himself, which Pete included in his book. "
        "# He # should have been more skeptical.",
        "False",
        "False",
    ),
    "squad": (
        "squad question: What sits on top of the Main Building at Notre Dame? context: "
        "Architecturally, the school has a Catholic character. Atop the Main Building's gold "
        "dome is a golden statue of the Virgin Mary.",
        "a golden statue of the Virgin Mary",
        ["a golden statue of the Virgin Mary"],
    ),
    "nq": (
        "nq question: when was the eiffel tower completed context: [PAR] [TLE] Eiffel Tower [SEP] "
        "The Eiffel Tower was completed in 1889 for the World's Fair .",
        "1889",
        ["1889", "1889"],
    ),
    "hotpotqa": (
        "hotpotqa question: Were Scott Derrickson and Ed Wood of the same nationality? "
        "context: [PAR] [TLE] Scott Derrickson [SEP] Scott Derrickson is an American "
        "director . [PAR] [TLE] Ed Wood [SEP] Ed Wood was an American filmmaker .",
        "American",
        ["American", "AMERICAN"],
    ),
    "newsqa": (
        "newsqa question: What was the businessman facing? context: NEW DELHI , India ( CNN ) "
        "-- A high court in northern India on Friday acquitted a wealthy businessman facing "
        "the death sentence .",
        "the death sentence",
        ["the death sentence", "THE DEATH SENTENCE"],
    ),
    "searchqa": (
        "searchqa question: This planet is the largest in the solar system context: [DAR] "
        "The largest planet in the solar system is Jupiter . [DAR] Jupiter has dozens of "
        "moons .",
        "Jupiter",
        ["Jupiter", "JUPITER"],
    ),
    "triviaqa": (
        "triviaqa question: In which mountain range is Mount Everest? context: [DOC] [TLE] "
        "Mount Everest [PAR] Mount Everest is Earth 's highest mountain above sea level , "
        "located in the Himalayas .",
        "the Himalayas",
        ["the Himalayas", "THE HIMALAYAS"],
    ),
    "scitail": (
        "scitail premise: Pluto rotates once on its axis every 6.39 Earth days; hypothesis: "
        "Earth rotates on its axis once times in one day.",
        "neutral",
        "neutral",
    ),
    "yelp_polarity": (
        "yelp_polarity text: Unfortunately, the frustration of being Dr. Goldberg's "
        "patient is a repeat of the experience I've had with so many other doctors in "
        'NYC.\nThe office staff is "rude".',
        "negative",
        "negative",
    ),
    "winogrande": (
        "winogrande sentence: Ian volunteered to eat Dennis's menudo after already having "
        "a bowl because _ despised eating intestine. option1: Ian option2: Dennis",
        "option2",
        "option2",
    ),
    "winogrande-choices": (
        "winogrande-choices sentence: Ian volunteered to eat Dennis's menudo after already having "
        "a bowl because _ despised eating intestine.",
        "Dennis",
        "Dennis",
    ),
    "paws": (
        "paws sentence1: In Paris , in October 1560 , he secretly met the English ambassador , "
        "Nicolas Throckmorton , asking him for a passport to return to England through Scotland "
        ". sentence2: In October 1560 , he secretly met with the English ambassador , Nicolas "
        "Throckmorton , in Paris , and asked him for a passport to return to Scotland through "
        "England .",
        "not_paraphrase",
        "not_paraphrase",
    ),
    "e2e": (
        "e2e meaning_representation: name[The Vaults], eatType[pub], priceRange[more than £30], "
        "customer rating[5 out of 5], near[Café Adriatic]",
        "The Vaults pub near Café Adriatic has a 5 star rating.  Prices start at £30.",
        [
            "The Vaults pub near Café Adriatic has a 5 star rating.  Prices start at £30.",
            "Close to Café Adriatic, The Vaults pub has a 5 out of 5 rating and prices over £30.",
        ],
    ),
    "webnlg": (
        "webnlg input: Aarhus | leaderName | Jacob_Bundsgaard",
        "The leader of Aarhus is Jacob Bundsgaard.",
        ["The leader of Aarhus is Jacob Bundsgaard.", "Jacob Bundsgaard is the leader of Aarhus."],
    ),
}

# task -> (train, dev, test) sizes of the fixture under the protocol
FIXTURE_SIZES = {name: (3, 2, 2) for name in FIRST_TRAIN}
FIXTURE_SIZES.update(
    {
        "multirc": (5, 4, 4),
        "record": (2, 1, 1),
        "record-choices": (2, 1, 1),
        "squad": (2, 2, 2),
        "yelp_polarity": (3, 2, 2),
    }
)


def test_every_paper_dataset_is_registered_and_has_a_fixture_case():
    papers = {name for names in BENCHMARKS.values() for name in names}
    extra = {"wnli", "copa", "superglue-rte", "triviaqa"}  # the "(and ...)" tasks
    extra |= {"copa-choices", "winogrande-choices", "record-choices"}  # answers from each example's own candidates
    assert papers | extra == set(list_tasks()) == set(FIRST_TRAIN)


@pytest.mark.parametrize("name", sorted(FIRST_TRAIN))
def test_fixture_loads_and_formats_like_the_papers(name):
    task = get_task(name)
    splits = task.load_splits(FIXTURES, seed=42, hub=False)
    first = splits["train"][0]
    source, target, label = FIRST_TRAIN[name]
    if name == "boolq":  # its passage is long: check the beginning
        assert first.source.startswith(source)
    else:
        assert first.source == source
    assert (first.target, first.label, first.task) == (target, label, task.name)
    assert tuple(len(splits[s]) for s in ("train", "dev", "test")) == FIXTURE_SIZES[name]
    for ex in splits["train"] + splits["dev"] + splits["test"]:
        assert ex.source.startswith(name + " ") and ex.target and ex.label is not None


def test_label_words_are_the_targets_of_classification_tasks():
    for name in list_tasks():
        task = get_task(name)
        splits = task.load_splits(FIXTURES, hub=False)
        targets = {ex.target for split in splits.values() for ex in split}
        if task.label_words is not None:
            assert targets <= set(task.label_words), name


def test_groups_and_ids_of_nested_releases():
    multirc = get_task("multirc").load_splits(FIXTURES, hub=False)["train"]
    assert [ex.group for ex in multirc] == ["0-0", "0-0", "0-0", "0-1", "0-1"]
    assert [ex.target for ex in multirc] == ["True", "False", "True", "True", "False"]
    squad_dev = get_task("squad").load_splits(FIXTURES, hub=False)["dev"]
    assert all(ex.idx.startswith("56be4db0acb8001400a502e") for ex in squad_dev)
    e2e_test = get_task("e2e").load_splits(FIXTURES, hub=False)["test"]
    # dev/test keep one example per input, labelled with all of its references
    wrestlers = next(ex for ex in e2e_test if "Wrestlers" in ex.source)
    assert wrestlers.label == [
        "The Wrestlers is a family friendly Chinese restaurant.",
        "The Wrestlers serves Chinese food and welcomes families.",
    ]


def test_stsb_targets_round_to_the_nearest_fifth():
    task = get_task("stsb")
    targets = [
        task.format({"sentence1": "a", "sentence2": "b", "label": v}).target
        for v in (3.8, 3.75, 4.2, 0.0, 5.0, 2.111, "1.750", 2.5, 2.3)
    ]
    # ties (2.5 = 12.5 fifths, 2.3 = 11.5) go to the even number of fifths, as T5's tf.round
    assert targets == ["3.8", "3.8", "4.2", "0.0", "5.0", "2.2", "1.8", "2.4", "2.4"]


def test_format_serves_unlabelled_user_records():
    ex = get_task("rte").format({"sentence1": "A man sleeps.", "sentence2": "A man is awake."})
    assert (ex.source, ex.target, ex.label) == ("rte sentence1: A man sleeps. sentence2: A man is awake.", "", None)
    hub_test_row = get_task("cb").format({"premise": "p", "hypothesis": "h", "label": -1, "idx": 7})
    assert (hub_test_row.label, hub_test_row.idx) == (None, 7)


@pytest.mark.parametrize(
    "name, choices",
    [
        ("copa-choices", ("The sun was rising.", "The grass was cut.")),
        ("winogrande-choices", ("Ian", "Dennis")),
        ("record-choices", ("France", "London", "Paris")),
    ],
)
def test_multiple_choice_variants_carry_each_examples_candidates(name, choices):
    """The papers' copa / winogrande answer literal words and record generates; these variants
    answer with one of the example's own candidates, which rank classification scores."""
    task = get_task(name)
    first = task.load_splits(FIXTURES, seed=42, hub=False)["train"][0]
    assert first.choices == choices and task.answer_candidates(first) == list(choices)
    assert first.target in choices
    paper = get_task(name.removesuffix("-choices"))
    paper_first = paper.load_splits(FIXTURES, seed=42, hub=False)["train"][0]
    assert paper_first.choices is None
    assert paper.answer_candidates(paper_first) == (paper.label_words or None)
