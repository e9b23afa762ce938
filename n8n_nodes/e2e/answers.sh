# What each tier's (fake) model answers in the end-to-end run; check.py reads the same file.
# The simple model hedges, so tier-router's quality check escalates its answers.
SIMPLE_ANSWER="I'm not sure."
MEDIUM_ANSWER="Medium model: a complete answer, with the reasoning laid out step by step and a short summary at the end."
COMPLEX_ANSWER="Complex model: a thorough answer that weighs the options, explains the trade-offs and ends with a recommendation."
# The AI Agent's model (agent-tool.json) first calls the Tier Router tool with TOOL_PROMPT, which
# the classifier sends to the complex tier (the agent's answer came back empty when it was not
# the first tier), then answers AGENT_ANSWER.
TOOL_PROMPT="Design a multi-step plan to migrate a monolithic e-commerce application to microservices, analysing the trade-offs of each step, the data consistency risks, and how to roll back."
AGENT_ANSWER="Agent: tier-router routes this request to the complex tier."
