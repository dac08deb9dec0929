"""Helpers for Agent Host plugins in Python (componentize-py).

The `wit_world` package is generated from wit/ when the component is built
(`agenthost plugin build`), so these helpers import from it only when
called: one module serves tools and policies alike.

Tools:    parse_input, invalid_input, failed, text, output, spec, host_call
Policies: complete, decide, reply, act, finish, last_user_text, latest_tool_results,
          policy_failed
"""

import json

from componentize_py_types import Err


# --- tools -----------------------------------------------------------------


def invalid_input(message):
    """An error to raise from `invoke` when the input makes no sense; the model sees it."""
    from wit_world.exports.tool import ToolError_InvalidInput

    return Err(ToolError_InvalidInput(message))


def failed(message):
    """An error to raise from `invoke` when the tool ran and failed."""
    from wit_world.exports.tool import ToolError_Failed

    return Err(ToolError_Failed(message))


def parse_input(call):
    """The call's input as a dict. The host has already checked it against the schema."""
    try:
        args = json.loads(call.input)
    except json.JSONDecodeError as e:
        raise invalid_input(f"input is not JSON: {e}")
    if not isinstance(args, dict):
        raise invalid_input("input must be a JSON object")
    return args


def text(s):
    """A text content part."""
    from wit_world.imports.types import ContentPart_Text

    return ContentPart_Text(s)


def output(*parts):
    """A tool's result from content parts (strings become text parts)."""
    from wit_world.exports.tool import ToolOutput

    return ToolOutput(content=[text(p) if isinstance(p, str) else p for p in parts])


def spec(name, description, schema):
    """A tool spec; `schema` is the input's JSON Schema as a dict."""
    from wit_world.imports.types import ToolSpec

    return ToolSpec(name=name, description=description, input_schema=json.dumps(schema))


def host_call(fn, *args):
    """Call a host function; a host error becomes the tool's `failed` error."""
    try:
        return fn(*args)
    except Err as e:
        raise failed(getattr(e.value, "value", str(e.value)))


# --- policies --------------------------------------------------------------


def policy_failed(message):
    """An error to raise from `step` when the policy gives up."""
    from wit_world.exports.policy import PolicyError_Failed

    return Err(PolicyError_Failed(message))


def complete(history, tools, system=None, max_tokens=4096, model=None):
    """Ask the model. A host error (no provider, budget spent) is raised as the policy's error."""
    from wit_world.exports.policy import PolicyError_Host
    from wit_world.imports import llm

    request = llm.Request(
        model=model,
        system=system,
        messages=history,
        tools=tools,
        max_tokens=max_tokens,
        temperature=None,
        stop_sequences=[],
    )
    try:
        return llm.complete(request)
    except Err as e:
        raise Err(PolicyError_Host(e.value))


def reply(message, state=None):
    """Say this to the person and wait for their next message."""
    from wit_world.exports.policy import Decision_Reply, StepOutput

    return StepOutput(decision=Decision_Reply(message), state=state)


def finish(message, state=None):
    """The task is done; the message is the final answer."""
    from wit_world.exports.policy import Decision_Finish, StepOutput

    return StepOutput(decision=Decision_Finish(message), state=state)


def act(calls, message=None, state=None):
    """Run these tool uses (not empty), then step again with their results."""
    from wit_world.exports.policy import Act, Decision_Act, StepOutput

    return StepOutput(decision=Decision_Act(Act(text=message, calls=list(calls))), state=state)


def decide(response, state=None):
    """Do what the model answered: its tool uses if any, else reply with its text."""
    from wit_world.imports.llm import MessagePart_Text, MessagePart_ToolUse

    said = "\n".join(p.value for p in response.parts if isinstance(p, MessagePart_Text))
    calls = [p.value for p in response.parts if isinstance(p, MessagePart_ToolUse)]
    if calls:
        return act(calls, said or None, state)
    return reply(said, state)


def last_user_text(history):
    """What the person said last (tool results travel in user messages too, without text)."""
    from wit_world.imports.llm import MessagePart_Text, Role

    for message in reversed(history):
        if message.role == Role.USER:
            said = "\n".join(p.value for p in message.parts if isinstance(p, MessagePart_Text))
            if said:
                return said
    return None


def latest_tool_results(history):
    """The tool results at the end of the history (those of the last step's calls), or []."""
    from wit_world.imports.llm import MessagePart_ToolResult, Role

    if not history or history[-1].role != Role.USER:
        return []
    return [p.value for p in history[-1].parts if isinstance(p, MessagePart_ToolResult)]
