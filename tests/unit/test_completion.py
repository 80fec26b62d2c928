from app.completion import Assembler, chunk_for, delta_dict
from app.providers.base import Delta, ToolCallDelta, Usage


def test_assembler_merges_content_and_tool_call_deltas_by_index():
    asm = Assembler()
    for event in [Delta(role="assistant", content=""), Delta(content="Hel"), Delta(content="lo"),
                  Delta(tool_calls=[ToolCallDelta(0, id="c1", name="f", arguments='{"a"')]),
                  Delta(tool_calls=[ToolCallDelta(0, arguments=": 1}")]),
                  Delta(tool_calls=[ToolCallDelta(1, id="c2", name="g", arguments="{}")]),
                  Delta(finish_reason="tool_calls"), Usage(10, 5)]:
        asm.add(event)
    done = asm.completion("cid", 1, "m")
    message = done["choices"][0]["message"]
    assert message["content"] == "Hello"
    assert [c["function"] for c in message["tool_calls"]] == [{"name": "f", "arguments": '{"a": 1}'},
                                                              {"name": "g", "arguments": "{}"}]
    assert done["choices"][0]["finish_reason"] == "tool_calls"
    assert done["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    assert done["object"] == "chat.completion" and asm.text == "Hello"


def test_assembler_keeps_choices_apart():
    asm = Assembler()
    asm.add(Delta(choice=1, content="b"))
    asm.add(Delta(choice=0, content="a"))
    assert [c["message"]["content"] for c in asm.completion("i", 1, "m")["choices"]] == ["a", "b"]


def test_delta_dict_only_has_present_fields():
    assert delta_dict(Delta(content="x")) == {"content": "x"}
    assert delta_dict(Delta(role="assistant", content="")) == {"role": "assistant", "content": ""}
    assert delta_dict(Delta(finish_reason="stop")) == {}
    call = delta_dict(Delta(tool_calls=[ToolCallDelta(0, arguments="{")]))["tool_calls"][0]
    assert call == {"index": 0, "function": {"arguments": "{"}}  # continuation deltas carry no id/type
    assert delta_dict(Delta(content="x", extra={"reasoning_content": "hm"}))["reasoning_content"] == "hm"


def test_chunk_shape_with_and_without_usage_field():
    chunk = chunk_for(Delta(content="x", finish_reason=None), "cid", 5, "m", with_usage=True)
    assert chunk["object"] == "chat.completion.chunk" and chunk["usage"] is None
    assert chunk["choices"] == [{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": None}]
    assert "usage" not in chunk_for(Delta(content="x"), "cid", 5, "m", with_usage=False)
