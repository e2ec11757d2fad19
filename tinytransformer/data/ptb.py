r"""Penn-Treebank style for lower-cased, space-tokenised English: ``to_ptb``.

SST-2's sentences are tokenised the Penn-Treebank way (the Stanford tokenizer's
output, lower-cased): clitics split off (``it 's``, ``do n't``), brackets named
(``-lrb-``), double quotes made directional (``` `` ``` opens, ``''`` closes),
``/`` and ``*`` escaped. Pang & Lee's movie reviews, the in-domain text to
pretrain on before SST-2, are lower-cased and spaced around punctuation but
written as typed: ``it's``, ``don't``, ``(``, ``"``. Left so, a vocabulary
learned on the reviews misses some of SST-2's most frequent tokens (``n't``,
``...``, ``-lrb-``, ``-rrb-``, ``` `` ```, ``'re``, ``'ve``: 0 occurrences
each). ``to_ptb`` rewrites such text into SST-2's form, by these rules:

1. Punctuation that lost its high bit: Windows-1252's ``’ “ ” – …`` (bytes
   0x92 0x93 0x94 0x96 0x85), stored as the control characters 0x12 0x13 0x14
   0x16 0x05, become ' `` '' -- ... (each split off but the apostrophe).
2. Mark-up is dropped: HTML's ``&nbsp ;`` and ``&#137 ;``, and underscores
   around a word (``_really_`` -> ``really``, ``_the`` -> ``the``).
3. Brackets become separate tokens named as in the Penn Treebank:
   ``( ) [ ] { }`` -> ``-lrb- -rrb- -lsb- -rsb- -lcb- -rcb-``.
4. ``/`` and ``*`` are escaped: ``writer/director`` -> ``writer\/director``.
5. A dash inside a word is split off: ``lap--a`` -> ``lap -- a``; currency,
   percent and number signs too: ``$60`` -> ``$ 60``, ``90%`` -> ``90 %``,
   ``#1`` -> ``# 1``.
6. Single quotes: an opening one is a backquote, split off (`the and 'the
   -> ` the); a closing one, like a plural possessive, is split
   off (``dogma'`` -> ``dogma '``, ``kids'`` -> ``kids '``). Elisions stay
   whole (``'70s 'em 'n' 'til 'cause ol' rockin'``), and so do names such as
   ``o'hara``. Double quotes typed as `` and '' are split off too.
7. Clitics are split off the word they end: ``n't 's 're 've 'll 'd 'm``
   (``it's`` -> ``it 's``, ``don't`` -> ``do n't``, ``can't`` -> ``ca n't``,
   ``won't`` -> ``wo n't``, ``ain't`` -> ``ai n't``); ``cannot`` -> ``can not``.
8. Periods: an acronym's letters are joined (``u . s .`` -> ``u.s.``); a run of
   three or more lone periods is an ellipsis (``. . .`` -> ``...``); an initial
   or a title followed by more words keeps its period (``j . pakula`` ->
   ``j. pakula``, ``mr . smith`` -> ``mr. smith``); a decimal is rejoined
   (``2 . 50`` -> ``2.50``).
9. Double quotes alternate ``` `` ```, ``''``, ``` `` ```, ... through the
   text given (quotations run across sentences, so give one document at a
   time), resynchronised at line edges: a quote that starts a line opens, one
   that ends a line closes.

Everything else stays as it is: words, hyphens, ``--``, ``:``; lines stay
lines, their words separated by single spaces. SST-2 itself is a fixed point
but for 4 of its 9,613 sentences (3 non-breaking spaces become plain ones,
one ``. . .`` becomes ``...``).

>>> to_ptb("it's a film i can't say i didn't like")
"it 's a film i ca n't say i did n't like"
>>> to_ptb('a " cult " film ( sort of ) , i laughed . . .')
"a `` cult '' film -lrb- sort of -rrb- , i laughed ..."
>>> to_ptb("mr . smith paid $10 for `the matrix' on the u . s . dvd")
"mr. smith paid $ 10 for ` the matrix ' on the u.s. dvd"
"""

import functools
import re

LOST_HIGH_BIT = {"\x12": "'", "\x13": " `` ", "\x14": " '' ", "\x16": " -- ", "\x05": " ... "}   # rule 1
BRACKETS = {"(": " -lrb- ", ")": " -rrb- ", "[": " -lsb- ", "]": " -rsb- ", "{": " -lcb- ", "}": " -rcb- "}  # rule 3
UNESCAPED = re.compile(r"(?<!\\)[/*]")                                                          # rule 4
HTML_LEFTOVER = re.compile(r"&nbsp ;|&#\d+ ;")                                                   # rule 2
SPLIT_SIGNS = re.compile(r"-{2,}|\$(?=\d)|(?<=\d)%|^#(?=\d)")                                    # rule 5
# What follows a word-initial apostrophe that elides letters ('70s, 'em) rather than opens a quote.
ELISION_AFTER = re.compile(r"(\d+s?|em|n|til|till|cause|nuff|bout|round|tis|twas|t|er|s|re|ve|ll|d|m)(?='|$)")
ELISION_BEFORE = re.compile(r"(ol|o|n|'n|\w*in)\Z")                                              # ol' n' rockin'
CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'ll|'d|'m)\Z")                                      # rule 7
TITLES = "mr|mrs|ms|dr|jr|sr|st|vs|etc|bros|inc"
PERIODS = [  # rule 8
    (re.compile(r"(?<!\S)[a-z] \.(?: [a-z] \.)+(?!\S)"), lambda m: m.group(0).replace(" ", "")),  # u.s.
    (re.compile(r"(?<!\S)\.(?: \.){2,}(?!\S)"), "..."),                                              # ...
    (re.compile(rf"(?<!\S)([a-z]|{TITLES}) \.(?= \S)"), r"\1."),                                    # j. mr.
    (re.compile(r"(?<!\S)(\d+) \. (\d+)(?!\S)"), r"\1.\2"),                                        # 2.50
]


@functools.lru_cache(maxsize=1 << 17)  # a word's rewrite depends on the word alone: 51k distinct in 1.5M words
def word_to_ptb(word: str) -> str:
    """Rules 2-7 on one word of the text: the word, or the words it splits into, space-separated."""
    for bracket, name in BRACKETS.items():
        word = word.replace(bracket, name)
    word = UNESCAPED.sub(r"\\\g<0>", word)
    words = SPLIT_SIGNS.sub(lambda m: f" {m.group(0)} ", word).split()
    return " ".join(_split_quotes_and_clitics(w.strip("_") or w) for w in words)  # rule 2: _emphasis_


def _split_quotes_and_clitics(word: str) -> str:
    """Rules 6 and 7 on a word with no spaces."""
    if len(word) > 2 and word[:2] == "``":
        return "`` " + _split_quotes_and_clitics(word[2:])             # double quotes typed as `` and ''
    if len(word) > 2 and word[-2:] == "''":
        return _split_quotes_and_clitics(word[:-2]) + " ''"
    elision = word[0] == "'" and ELISION_AFTER.match(word, 1)
    if len(word) > 1 and word[0] in "`'" and word[1].isalnum() and not elision:
        return "` " + _split_quotes_and_clitics(word[1:])              # an opening single quote
    if len(word) > 1 and word[-1] == "'" and word[-2].isalnum() and not ELISION_BEFORE.match(word[:-1]):
        return _split_quotes_and_clitics(word[:-1]) + " '"             # a closing one, a plural possessive
    if word == "cannot":
        return "can not"
    return CLITIC.sub(r" \1", word)


def _direct_quotes(lines: list) -> list:
    """Rule 9: each ``"`` becomes ``` `` ``` or ``''``, alternating through ``lines``."""
    opening, out = True, []
    for line in lines:
        if '"' in line:
            words = line.split(" ")
            for i, word in enumerate(words):
                if word == '"':
                    opening = i == 0 or (opening and i != len(words) - 1)  # line edges resynchronise
                    words[i] = "``" if opening else "''"
                    opening = not opening
            line = " ".join(words)
        out.append(line)
    return out


def to_ptb(text: str) -> str:
    """``text`` (lower-cased, spaced around punctuation) in SST-2's Penn-Treebank style: the module's rules.

    Lines stay lines: one that held only an HTML left-over becomes empty.
    Double quotes alternate through the whole ``text``: pass one document at
    a time.
    """
    for char, replacement in LOST_HIGH_BIT.items():                               # rule 1
        text = text.replace(char, replacement)
    text = HTML_LEFTOVER.sub(" ", text)                                           # rule 2
    text = "\n".join(" ".join(word_to_ptb(w) for w in line.split()) for line in text.split("\n"))  # rules 2-7
    for pattern, replacement in PERIODS:                                          # rule 8
        text = pattern.sub(replacement, text)
    return "\n".join(_direct_quotes(text.split("\n")))                           # rule 9
