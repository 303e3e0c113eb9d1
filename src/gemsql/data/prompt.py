"""The tutorial's prompt, and the conversion of a (question, context, sql) row into chat messages."""

from __future__ import annotations

USER_PROMPT = """Given the <USER_QUERY> and the <SCHEMA>, generate the corresponding SQL command to retrieve the desired data, considering the query's syntax, semantics, and schema constraints.

<SCHEMA>
{context}
</SCHEMA>

<USER_QUERY>
{question}
</USER_QUERY>
"""


def user_message(question: str, context: str) -> dict[str, str]:
    return {"role": "user", "content": USER_PROMPT.format(question=question, context=context)}


def to_messages(question: str, context: str, sql: str) -> list[dict[str, str]]:
    """One training conversation: the user turn carries schema + question, the assistant turn is the SQL."""
    return [user_message(question, context), {"role": "assistant", "content": sql}]
