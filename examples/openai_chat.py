"""The official `openai` SDK against the proxy: plain and streamed replies in one named conversation.

    BASE_URL=http://127.0.0.1:8000/v1 MODEL=llama3.1 python examples/openai_chat.py

`X-Session-Id` names the conversation (optional: without it the proxy recognises a chat by its
opening); `X-Memory: off` would make a request a plain pass-through, `X-Context-Budget` caps the
context for one request.
"""

import os

from openai import OpenAI

client = OpenAI(base_url=os.environ.get("BASE_URL", "http://127.0.0.1:8000/v1"), api_key=os.environ.get("API_KEY", "unused"))
MODEL = os.environ.get("MODEL", "fake-model")
SESSION = {"X-Session-Id": os.environ.get("SESSION_ID", "example-openai")}

reply = client.chat.completions.create(
    model=MODEL, extra_headers=SESSION,
    messages=[{"role": "system", "content": "You are a friendly travel companion."},
              {"role": "user", "content": "My favourite city is Valparaíso, for its painted stairs."}])
print("reply:", reply.choices[0].message.content)

stream = client.chat.completions.create(
    model=MODEL, stream=True, stream_options={"include_usage": True},
    extra_headers={**SESSION, "X-Context-Budget": "4096"},
    messages=[{"role": "user", "content": "Which city did I say was my favourite?"}])
print("streamed: ", end="")
for chunk in stream:
    if chunk.choices:
        print(chunk.choices[0].delta.content or "", end="", flush=True)
    elif chunk.usage:
        print(f"\nusage: {chunk.usage.prompt_tokens} prompt + {chunk.usage.completion_tokens} completion tokens")
