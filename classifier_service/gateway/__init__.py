"""The chat-completion path: send a request down the escalation chain and return the answer.

:mod:`.engine` walks the chain (send, check the answer, escalate, fail over), :mod:`.backends`
talks to the LLM servers, :mod:`.ollama_wire` is Ollama's wire format both ways. A new backend
wire format goes here, next to :mod:`.ollama_wire`. HTTP routes live in
:mod:`classifier_service.api`.
"""
