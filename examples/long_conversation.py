"""A long scripted conversation that shows memory working end to end, with no API key.

    python examples/long_conversation.py                       # starts a fake model and the proxy itself
    python examples/long_conversation.py --base-url http://127.0.0.1:8000/v1 --model llama3.1

A client that keeps only its last few turns (as every client must, eventually) plants a handful
of facts early, chats about other things for 120 turns, then asks about the facts. The offline
fake model answers a question with the sentence of its context that matches it best, so each
answer shows whether the proxy put the right memory in front of the model.
"""

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FACTS = [("My sister Ilse lives in Tromsø and teaches the cello.", "Where does my sister Ilse live?", "Tromsø"),
         ("I keep the spare key under the blue flowerpot by the shed.", "Where do I keep the spare key?",
          "flowerpot"),
         ("My first car was a green 1998 Volvo called Bertil.", "What was my first car called?", "Bertil"),
         ("I'm allergic to hazelnuts, so no Nutella for me.", "What am I allergic to?", "hazelnuts")]
SMALL_TALK = ["The bus was late again this morning.", "I tried a new recipe for lentil soup.",
              "Work was busy but fine.", "We watched a documentary about octopuses.", "It rained all afternoon.",
              "I cleaned the windows at last.", "The cat knocked a glass off the table.",
              "I started a puzzle with a thousand pieces."]


@contextlib.contextmanager
def local_proxy():
    from app.config import Settings
    from app.fakes.openai_server import FakeUpstream
    from app.fakes.serve import serving
    from app.main import create_app

    with tempfile.TemporaryDirectory() as data, serving(FakeUpstream().app()) as upstream:
        settings = Settings(_env_file=None, upstream_base_url=upstream + "/v1", data_dir=Path(data),
                            log_dir=Path(data) / "logs", log_level="WARNING", summary_enabled=False)
        with serving(create_app(settings)) as proxy:
            yield proxy + "/v1"


def converse(base_url: str, model: str, window: int = 6) -> int:
    client = OpenAI(base_url=base_url, api_key="unused", max_retries=0)
    history: list[dict] = []

    def say(text: str) -> str:
        history.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model=model, messages=history[-window:],
                                               extra_headers={"X-Session-Id": "long-conversation-demo"})
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
        return history[-1]["content"]

    for fact, _, _ in FACTS:
        say(fact)
    for i in range(120):
        say(SMALL_TALK[i % len(SMALL_TALK)])
    recalled = 0
    for _, question, answer in FACTS:
        reply = say(question)
        ok = answer.lower() in reply.lower()
        recalled += ok
        print(f"{'✓' if ok else '✗'} {question} -> {reply}")
    print(f"{recalled} of {len(FACTS)} facts recalled after {len(history) // 2} turns "
          f"(the client only ever sent its last {window} messages)")
    return recalled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url")
    parser.add_argument("--model", default="fake-model")
    args = parser.parse_args()
    if args.base_url:
        recalled = converse(args.base_url, args.model)
    else:
        with local_proxy() as base_url:
            recalled = converse(base_url, args.model)
    return 0 if recalled == len(FACTS) else 1


if __name__ == "__main__":
    sys.exit(main())
