"""What a learner's name may be, as plain rules (ui.identity applies them): letters of one script only, and no
word that passes for a role or for the lab's own words, read through a skeleton of look-alike letters (the
confusables of Unicode TR39 that matter for these words: Cyrillic and Greek letters drawn like Latin ones), so
"Prоf" with a Cyrillic о is "prof"."""
from __future__ import annotations

import re
import unicodedata

# Words a learner's name may not hold (case-insensitive, as a word): a name must not pass for a role.
ROLE_WORDS = frozenset("prof professor dr doctor instructor teacher tutor lecturer ta admin administrator staff "
                       "moderator".split())
# What the lab itself writes where a name goes: a learner named so would read as the lab's word to classmates.
LAB_WORDS = ("you", "this machine", "someone", "someone else", "guest", "nobody", "everyone")

# Look-alikes (lower case, after casefold) -> the Latin letter they are drawn as.
_SKELETON = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "г": "r", "д": "d", "е": "e", "ё": "e", "з": "3", "і": "i", "ї": "i", "ј": "j", "к": "k",
    "л": "n", "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ь": "b", "ӏ": "l",
    # Greek
    "α": "a", "β": "b", "γ": "y", "δ": "d", "ε": "e", "η": "n", "ι": "i", "κ": "k", "μ": "m", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ω": "w",
    # Latin look-alikes of other letters
    "ı": "i", "ȷ": "j", "ɑ": "a", "ɡ": "g", "ο": "o",
})


def script(ch: str) -> str:
    """The script a letter is written in, by its Unicode name ("LATIN", "CYRILLIC", "GREEK", "CJK", ...)."""
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def skeleton(text: str) -> str:
    """Case-folded, compatibility-normalised, accents dropped, look-alike letters read as the Latin they mimic."""
    s = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", str(text)).casefold())
    s = "".join(c for c in s if not unicodedata.combining(c))
    return s.translate(_SKELETON)


def check_name(name: str) -> str:
    """A cleaned name (whitespace collapsed, NFC) or ValueError saying why it may not be a name."""
    name = unicodedata.normalize("NFC", re.sub(r"\s+", " ", str(name)).strip())
    if not 1 <= len(name) <= 40 or not re.fullmatch(r"[\w .'@-]+", name):
        raise ValueError("a name is 1 to 40 letters, digits, spaces or . ' @ -")
    scripts = {script(c) for c in name if c.isalpha()}
    if len(scripts) > 1:
        raise ValueError("a name is written in one alphabet (these letters mix " + ", ".join(
            sorted(s.title() for s in scripts)) + ")")
    bare = skeleton(name)
    role = next((w for w in re.findall(r"[^\W\d_]+", bare) if w in ROLE_WORDS), None)
    if role:
        raise ValueError(f"a name may not claim a role (\"{role}\"): the lab marks instructors itself")
    if " ".join(re.findall(r"[^\W_]+", bare)) in LAB_WORDS:
        raise ValueError(f"\"{name}\" is a word the lab itself shows: pick another name")
    return name
