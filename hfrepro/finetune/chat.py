"""`hfrepro chat --model RUN_OR_DIR`: multi-turn chat with a (fine-tuned) model, like ChatGPT's; and
`hfrepro complete --model RUN_OR_DIR -p PROMPT`: a plain completion, like the hosted `completions.create`.

The whole conversation is kept and re-sent through the model's own chat template at every turn, so the model
sees earlier turns and accepts follow-up corrections ("no, shorter"). Tokens are streamed as they are
generated. Commands: /reset (forget the conversation), /system TEXT (set the system prompt and restart),
/history, /help, /exit. When the conversation outgrows the context, the oldest turns are dropped (said so).

    from hfrepro.finetune.chat import ChatSession
    s = ChatSession.load("runs/finetune/ft-lora-1a2b3c")
    s.send("Define 'nightfall'.")
    s.send("Shorter, please.")

A completion uses no chat template: the prompt is continued as written, which is how a model fine-tuned on
prompt/completion pairs (or plain text) is meant to be used - end the prompt the way your training prompts
ended (e.g. with "->" or "Answer:") and pass `--stop` for the separator your completions end with.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, TextIO

from hfrepro.errors import UserError
from hfrepro.finetune.jobs import find_run, has_model, job_status
from hfrepro.models import load_causal_lm, load_tokenizer, resolve

# SmolLM2-Instruct's chat template (ChatML with a default system prompt), as shipped with the model. Used by
# the unit tests' tiny stand-in model, and as the template for models that have none.
SMOLLM2_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

# For a model without a chat template (e.g. a base LM fine-tuned on prompt/completion text).
PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'User: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + eos_token + '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")

HELP = ("commands: /reset  forget the conversation | /system TEXT  set the system prompt (and reset) | "
        "/history  show the conversation | /exit  leave (Ctrl-D works too)")


def resolve_model(name: str, runs_dir: str | Path | None = None) -> str:
    """A run id (in runs_dir), a run folder, a model/adapter folder, or any model name -> a model path/name."""
    run = find_run(name, runs_dir, must_exist=False)
    if run is not None:
        if not has_model(run):
            raise UserError(f"run {run.name} has no model yet (status: {job_status(run)['status']})",
                            where=str(run), fix=f"wait for it: hfrepro finetune follow {run.name}")
        return str(run)
    return resolve(name)


class ChatSession:
    def __init__(self, model, tokenizer, system: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.2, top_p: float = 0.9, seed: int = 0, out: TextIO | None = None):
        self.model, self.tok = model.eval(), tokenizer
        self.system = system
        self.max_new_tokens = max_new_tokens
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.out = out if out is not None else sys.stdout
        self.messages: list[dict] = []
        self.notes: list[str] = []
        if not getattr(tokenizer, "chat_template", None):
            tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
            self.notes.append("this model has no chat template: using a plain 'User:/Assistant:' format")
        self.context = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self.reset()

    @classmethod
    def load(cls, name: str, runs_dir: str | Path | None = None, **kw) -> "ChatSession":
        path = resolve_model(name, runs_dir)
        return cls(load_causal_lm(path), load_tokenizer(path), **kw)

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def set_system(self, text: str) -> None:
        self.system = text.strip() or None
        self.reset()

    def _prompt_ids(self):
        """Token ids of the conversation + the assistant cue, dropping the oldest turns if too long."""
        budget = self.context - self.max_new_tokens
        while True:
            ids = self.tok.apply_chat_template(self.messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)["input_ids"]
            first = 1 if self.messages and self.messages[0]["role"] == "system" else 0
            if ids.shape[1] <= budget or len(self.messages) - first <= 1:
                return ids
            del self.messages[first:first + 2]  # drop the oldest user/assistant exchange
            self.notes.append("the conversation outgrew the context: dropped the oldest exchange")

    def send(self, text: str, on_token: Callable[[str], None] | None = None) -> str:
        """Add a user turn, generate the reply (streamed to `on_token`, default: the output), keep it."""
        import torch
        from transformers import TextStreamer

        self.messages.append({"role": "user", "content": text})
        ids = self._prompt_ids()
        pieces: list[str] = []
        emit = on_token or (lambda s: (self.out.write(s), self.out.flush()))

        class Stream(TextStreamer):
            def on_finalized_text(self, s: str, stream_end: bool = False):
                pieces.append(s)
                if s:
                    emit(s)

        streamer = Stream(self.tok, skip_prompt=True, skip_special_tokens=True)
        torch.manual_seed(self.seed + len(self.messages))
        sample = self.temperature > 0
        gen = dict(max_new_tokens=self.max_new_tokens, do_sample=sample, streamer=streamer,
                   pad_token_id=self.tok.pad_token_id, eos_token_id=self.tok.eos_token_id)
        if sample:
            gen.update(temperature=self.temperature, top_p=self.top_p)
        with torch.no_grad():
            self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen)
        reply = "".join(pieces).strip()
        self.messages.append({"role": "assistant", "content": reply})
        return reply

    def handle(self, line: str) -> str | None:
        """One line of user input: a command (returns its message) or a chat turn (returns None after the
        reply was streamed). Raises EOFError on /exit."""
        s = line.strip()
        if not s:
            return ""
        if s in ("/exit", "/quit"):
            raise EOFError
        if s == "/reset":
            self.reset()
            return "(conversation reset" + (f"; system prompt kept: {self.system!r})" if self.system else ")")
        if s == "/system" or s.startswith("/system "):
            self.set_system(s[len("/system"):])
            return f"(system prompt set to {self.system!r}; conversation reset)" if self.system else \
                "(system prompt cleared: the model's default applies; conversation reset)"
        if s == "/history":
            return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages) or "(empty)"
        if s in ("/help", "/?"):
            return HELP
        if s.startswith("/"):
            return f"(unknown command {s.split()[0]}; {HELP})"
        self.out.write("assistant> ")
        self.out.flush()
        self.send(s)
        self.out.write("\n")
        for n in self.notes:
            self.out.write(f"({n})\n")
        self.notes.clear()
        return None


def repl(session: ChatSession, messages: list[str] | None = None, inp: TextIO | None = None) -> int:
    """Interactive loop (or the scripted `messages`, one turn each)."""
    out = session.out
    interactive = messages is None and (inp or sys.stdin).isatty()
    if interactive:
        out.write(f"Chatting with the model. {HELP}\n")
    for n in session.notes:
        out.write(f"({n})\n")
    session.notes.clear()
    lines = iter(messages) if messages is not None else None
    while True:
        try:
            if lines is not None:
                line = next(lines)
                out.write(f"user> {line}\n")
            elif interactive:
                line = input("user> ")
            else:
                line = (inp or sys.stdin).readline()
                if not line:
                    raise EOFError
                out.write(f"user> {line.rstrip()}\n")
            msg = session.handle(line)
            if msg:
                out.write(msg + "\n")
        except (EOFError, StopIteration):
            if interactive:
                out.write("\n")
            return 0


def complete(model, tokenizer, prompt: str, max_tokens: int = 16, temperature: float = 0.0, top_p: float = 1.0,
             n: int = 1, stop: list[str] | None = None, seed: int = 0) -> list[dict]:
    """`n` continuations of `prompt` as written (no chat template): greedy at temperature 0, else sampled.
    Each is {"text", "finish_reason"}: "stop" (a stop sequence or the end-of-text token) or "length"."""
    import torch

    if not prompt:
        raise UserError("the prompt is empty", fix='pass the text to continue with -p "..."')
    if max_tokens < 1 or n < 1 or temperature < 0 or not 0 < top_p <= 1:
        raise UserError("--max_tokens and -n must be >= 1, --temperature >= 0, 0 < --top_p <= 1")
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    sample = temperature > 0
    gen = dict(max_new_tokens=max_tokens, do_sample=sample, num_return_sequences=n if sample else 1,
               pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if sample:
        gen.update(temperature=temperature, top_p=top_p)
    torch.manual_seed(seed)
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **gen)
    choices = []
    for row in out:
        new = row[ids.shape[1]:]
        ended = tokenizer.eos_token_id is not None and tokenizer.eos_token_id in new.tolist()
        text = tokenizer.decode(new, skip_special_tokens=True)
        cut = min((text.index(s) for s in stop or [] if s and s in text), default=None)
        if cut is not None:
            text = text[:cut]
        choices.append({"text": text, "finish_reason": "stop" if ended or cut is not None else "length"})
    return choices * (1 if sample else n)

