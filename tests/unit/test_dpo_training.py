"""DPO in the trainer, in process and fast: the job converts an uploaded preference file into canonical
pairs (a bad pair fails the job, naming its line) and copies a preference dataset as it is; the run
reads the pairs into trl's conversational rows, drops a pair whose prompt fills max_length, holds out
validation pairs as SFT does and refuses a line that is not a pair; the worker's step messages carry
the reward margin and accuracy, and its result the objective. Real DPO runs are in
tests/integration/test_training_runs.py."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from belle_shared.errors import JobError
from belle_trainer import job as train_job
from belle_trainer.dpo import load_pairs, read_pairs, reward_metrics
from belle_trainer.errors import BadDataError

OPENAI_ROW = {"input": {"messages": [{"role": "system", "content": "简短"}, {"role": "user", "content": "2+2?"}]},
              "preferred_output": [{"role": "assistant", "content": "4"}],
              "non_preferred_output": [{"role": "assistant", "content": "5"}]}
CANONICAL = {"conversations": [{"from": "human", "value": "2+2?"}], "system": "简短", "chosen": "4", "rejected": "5"}


def write_jsonl(path, rows) -> str:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n"
                            for row in rows), encoding="utf-8")
    return str(path)


class FakeContext:
    """What `_materialize` uses of a JobContext: an uploaded file or a dataset, the store, events."""

    def __init__(self, uri: str):
        self.events: list[str] = []
        self.store = SimpleNamespace(open=lambda uri, mode: open(uri, mode))
        self._uri = uri
        self.team_id = "team"

    def team_file(self, file_id, *, param):
        return SimpleNamespace(uri=self._uri)

    def session_factory(self):
        dataset = SimpleNamespace(artifact=SimpleNamespace(uri=self._uri))

        class Session:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def scalar(self, statement):
                return dataset

        return Session()

    def event(self, message, **data):
        self.events.append(message)


def materialize(tmp_path, rows, *, objective, dataset=False):
    ctx = FakeContext(write_jsonl(tmp_path / "upload.jsonl", rows))
    target = train_job._materialize(ctx, tmp_path / "train.jsonl", dataset_id="d" if dataset else None,
                                    file_id=None if dataset else "f", param="training_file_id", objective=objective)
    return [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()], ctx.events


# ------------------------------------------------------------------------------ the job's inputs


def test_an_uploaded_preference_file_becomes_canonical_pairs(tmp_path):
    trl_row = {"prompt": "2+2?", "chosen": "4", "rejected": "5"}
    rows, events = materialize(tmp_path, [OPENAI_ROW, "", trl_row], objective="dpo")
    assert rows == [CANONICAL, {k: v for k, v in CANONICAL.items() if k != "system"}]
    assert events == ["train.jsonl: 2 rows"]


def test_a_bad_pair_fails_the_job_naming_its_line(tmp_path):
    with pytest.raises(JobError) as info:
        materialize(tmp_path, [OPENAI_ROW, {"prompt": "q", "chosen": "same", "rejected": "same"}], objective="dpo")
    assert info.value.code == "invalid_training_row" and info.value.param == "training_file_id"
    assert "line 2, field rejected: not a preference pair: the preferred and the rejected reply are the same text" \
        in info.value.message
    with pytest.raises(JobError, match="line 1: not JSON"):
        materialize(tmp_path, ["{broken"], objective="dpo")
    assert not (tmp_path / "train.jsonl").exists()


def test_a_preference_dataset_is_copied_as_it_is(tmp_path):
    rows, _ = materialize(tmp_path, [CANONICAL, CANONICAL], objective="dpo", dataset=True)
    assert rows == [CANONICAL, CANONICAL]


def test_sft_still_converts_conversations_and_skips_unreadable_rows(tmp_path):
    rows, events = materialize(tmp_path, [{"instruction": "q", "input": "", "output": "a"}, {"x": 1}],
                               objective="sft")
    assert rows == [{"conversations": [{"from": "human", "value": "q"}, {"from": "assistant", "value": "a"}]}]
    assert events == ["train.jsonl: 1 rows, 1 unreadable rows skipped"]


# ------------------------------------------------------------------------------ the run's pairs


def test_pairs_become_trl_conversational_rows(tmp_path):
    rows = read_pairs(write_jsonl(tmp_path / "pairs.jsonl", [CANONICAL, ""]))
    assert rows == [{"prompt": [{"role": "system", "content": "简短"}, {"role": "user", "content": "2+2?"}],
                     "chosen": [{"role": "assistant", "content": "4"}],
                     "rejected": [{"role": "assistant", "content": "5"}]}]


@pytest.mark.parametrize("line, words", [
    ("{broken", "line 2: not JSON"),
    (json.dumps({"conversations": [{"from": "human", "value": "q"}], "chosen": "a"}), '"rejected" must be'),
    (json.dumps({**CANONICAL, "conversations": [{"from": "assistant", "value": "q"}]}), "end with the user's turn"),
    (json.dumps({"prompt": "q", "chosen": "a", "rejected": "b"}), '"conversations" must be'),
])
def test_a_line_that_is_not_a_pair_fails_the_run(tmp_path, line, words):
    with pytest.raises(BadDataError, match=words):
        read_pairs(write_jsonl(tmp_path / "pairs.jsonl", [CANONICAL, line]))


class CharTokenizer:
    """One token per character, BELLE's format: enough for the prompt-length check."""

    def apply_chat_template(self, messages, *, tokenize, add_generation_prompt):
        return "".join(f"Human: {m['content']}\n\n" for m in messages if m["role"] == "user") + "Assistant: "

    def __call__(self, text, add_special_tokens):
        return {"input_ids": list(range(len(text)))}


def test_pairs_whose_prompt_fills_max_length_are_dropped_and_a_share_held_out(tmp_path):
    short = [{**CANONICAL, "conversations": [{"from": "human", "value": f"q{i}"}]} for i in range(20)]
    long = {**CANONICAL, "conversations": [{"from": "human", "value": "x" * 50}]}
    path = write_jsonl(tmp_path / "pairs.jsonl", [*short, long])
    data = load_pairs(CharTokenizer(), path, None, max_length=40, validation_split=0.1, seed=42)
    assert (len(data.train), len(data.validation), data.dropped) == (18, 2, 1)
    assert data.reasons == {"prompt fills max_length": 1}
    again = load_pairs(CharTokenizer(), path, None, max_length=40, validation_split=0.1, seed=42)
    assert again.validation == data.validation  # seeded
    separate = load_pairs(CharTokenizer(), path, write_jsonl(tmp_path / "val.jsonl", [CANONICAL]), max_length=40,
                          validation_split=0.1, seed=42)
    assert (len(separate.train), len(separate.validation)) == (20, 1)
    with pytest.raises(BadDataError, match="no usable preference pair in pairs.jsonl .1 whose prompt fills"):
        load_pairs(CharTokenizer(), write_jsonl(tmp_path / "pairs.jsonl", [long]), None, max_length=40,
                   validation_split=0.1, seed=42)


def test_the_last_reward_metrics_of_training_and_evaluation():
    history = [{"loss": 0.7, "rewards/margins": 0.1, "rewards/accuracies": 0.5, "step": 1},
               {"eval_loss": 0.6, "eval_rewards/margins": 0.3, "eval_rewards/accuracies": 0.75, "step": 1},
               {"loss": 0.5, "rewards/margins": 0.9, "rewards/accuracies": 1.0, "step": 2},
               {"train_loss": 0.6, "step": 2}]
    assert reward_metrics(history) == {"reward_margin": 0.9, "reward_accuracy": 1.0, "eval_reward_margin": 0.3,
                                       "eval_reward_accuracy": 0.75}
    assert reward_metrics(history[:1])["eval_reward_accuracy"] is None


# ------------------------------------------------------------------------------ the worker's events


def test_dpo_steps_say_their_reward_margin_and_accuracy(monkeypatch):
    monkeypatch.setattr(train_job, "STEP_EVENT_EVERY_SECONDS", 0.0)
    events = []
    ctx = SimpleNamespace(event=lambda message, **data: events.append((message, data)))
    follower = train_job._ProgressFollower(ctx, run_dir=None, spec=None)
    step = {"event": "step", "step": 7, "epoch": 0.5, "loss": 0.41234, "learning_rate": 1e-4,
            "tokens_per_second": 900.0, "trained_tokens": 5000}
    follower.handle({**step, "reward_margin": 1.23456, "reward_accuracy": 0.875})
    follower.handle({"event": "eval", "step": 7, "eval_loss": 0.5, "reward_margin": 0.9, "reward_accuracy": 0.75})
    follower.handle(step)  # an SFT step
    assert [message for message, _ in events] == [
        "step 7: loss 0.4123, reward margin 1.2346, accuracy 0.8750",
        "step 7: eval loss 0.5000, reward margin 0.9000, accuracy 0.7500",
        "step 7: loss 0.4123",
    ]
    assert events[0][1]["reward_accuracy"] == 0.875
    assert follower.last_metrics["reward_margin"] == 1.23456 and follower.last_metrics["eval_reward_accuracy"] == 0.75


def test_the_job_result_carries_the_objective():
    dpo = SimpleNamespace(id="m", name="ft:x", details={"objective": "dpo", "steps": 16, "dpo": {
        "reward_margin": 0.9, "reward_accuracy": 1.0, "eval_reward_margin": None, "eval_reward_accuracy": None}})
    result = train_job._result(dpo)
    assert result["objective"] == "dpo" and result["reward_accuracy"] == 1.0 and result["steps"] == 16
    # A model recorded before DPO existed was supervised.
    assert train_job._result(SimpleNamespace(id="m", name="ft:y", details={"steps": 3}))["objective"] == "sft"
