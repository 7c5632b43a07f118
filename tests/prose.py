"""English prose in a line meant to be Chinese: two plain English words in one stretch
between Chinese text, code taken out. Used by the catalog tests and the Chinese watch test."""

from __future__ import annotations

import re

# A plain word: letters only, lower case after the first letter (CamelCase, snake_case,
# dotted names, calls, bracketed names and ACRONYMS are code); one letter alone is a
# variable's name; None, nan and the like are values.
PLAIN_WORD = re.compile(r"[\"']?[A-Za-z][a-z]+(?:'[a-z]+)?[\"',.;:!?]*")
CODE_WORDS = {"none", "true", "false", "nan", "inf"}
# A word that is English prose even alone between Chinese.
PROSE_WORDS = {
    "the", "and", "with", "is", "are", "of", "to", "but", "not", "was", "were", "that", "this", "from",
    "your", "you", "it", "its", "returned", "expected", "called", "likely", "cause", "should", "instead",
}  # fmt: skip
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
CODE_SPAN = re.compile(r"`[^`]*`")
# A library's own error text quoted in a message stays as the library wrote it.
LIBRARY_ERROR = re.compile(r"\b[A-Z]\w*(?:Error|Exception|Warning): .*$")
REPR_FRAGMENTS = ("Parameter containing:",)
# A command a learner types is code: `python -m katas hint 01_autograd/grad_at`.
CALL_ARGUMENTS = re.compile(r"\b[A-Za-z_][\w.]*\([^()]*\)")
KATAS_COMMAND = re.compile(r"python -m katas(?: [\w./-]+)*")


def english_prose(line: str) -> list[str]:
    """The English words of `line` outside code: two plain words between the same Chinese text
    (code between them or not), or one word of PROSE_WORDS."""
    line = KATAS_COMMAND.sub(" ", LIBRARY_ERROR.sub(" ", CODE_SPAN.sub(" ", line)))
    while True:  # a call's arguments are code: save_checkpoint(path, model, optimizer)
        bare = CALL_ARGUMENTS.sub(" ", line)
        if bare == line:
            break
        line = bare
    for fragment in REPR_FRAGMENTS:
        line = line.replace(fragment, " ")
    found = []
    for segment in CJK.split(line):
        words = [
            token
            for token in segment.split()
            if PLAIN_WORD.fullmatch(token) and token.strip("\"',.;:!?").lower() not in CODE_WORDS
        ]
        bare = [word.strip("\"',.;:!?").lower() for word in words]
        if len(words) >= 2 or any(word in PROSE_WORDS for word in bare):
            found.append(" ".join(words))
    return found
