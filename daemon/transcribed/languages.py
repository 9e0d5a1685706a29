"""Language codes: the config's two-letter ISO 639-1 codes (Whisper's), the names whisperX
accepts for them (`German`, `castilian`), and the three-letter ISO 639-2 tags that containers
carry on their streams (Matroska and MP4 write 639-2/B, `ger`; some tools write 639-2/T, `deu`:
both are German).

A configuration value that names a language is typed `Language`: the config loader reads it as
Whisper's code (`German` -> `de`) and refuses one Whisper does not know, naming the key.

No library installed here maps 639-1 to 639-2 (pycountry, langcodes and iso639 are absent), so
this is a small table: every language Whisper knows, with both of its 639-2 forms where the
bibliographic (B) and terminology (T) codes differ.
"""

from __future__ import annotations

import functools
from typing import Annotated

#: ISO 639-1 (Whisper's codes) -> ISO 639-2 codes: the B form first, then T where it differs.
#: Whisper's "jw" is ISO's "jv"; "haw" and "yue" have no two-letter code and stand for themselves.
ISO_639_2: dict[str, tuple[str, ...]] = {
    "af": ("afr",), "am": ("amh",), "ar": ("ara",), "as": ("asm",), "az": ("aze",),
    "ba": ("bak",), "be": ("bel",), "bg": ("bul",), "bn": ("ben",), "bo": ("tib", "bod"),
    "br": ("bre",), "bs": ("bos",), "ca": ("cat",), "cs": ("cze", "ces"), "cy": ("wel", "cym"),
    "da": ("dan",), "de": ("ger", "deu"), "el": ("gre", "ell"), "en": ("eng",), "es": ("spa",),
    "et": ("est",), "eu": ("baq", "eus"), "fa": ("per", "fas"), "fi": ("fin",), "fo": ("fao",),
    "fr": ("fre", "fra"), "gl": ("glg",), "gu": ("guj",), "ha": ("hau",), "haw": ("haw",),
    "he": ("heb",), "hi": ("hin",), "hr": ("hrv",), "ht": ("hat",), "hu": ("hun",),
    "hy": ("arm", "hye"), "id": ("ind",), "is": ("ice", "isl"), "it": ("ita",), "ja": ("jpn",),
    "jw": ("jav",), "ka": ("geo", "kat"), "kk": ("kaz",), "km": ("khm",), "kn": ("kan",),
    "ko": ("kor",), "la": ("lat",), "lb": ("ltz",), "ln": ("lin",), "lo": ("lao",),
    "lt": ("lit",), "lv": ("lav",), "mg": ("mlg",), "mi": ("mao", "mri"), "mk": ("mac", "mkd"),
    "ml": ("mal",), "mn": ("mon",), "mr": ("mar",), "ms": ("may", "msa"), "mt": ("mlt",),
    "my": ("bur", "mya"), "ne": ("nep",), "nl": ("dut", "nld"), "nn": ("nno",),
    "no": ("nor", "nob"), "oc": ("oci",), "pa": ("pan",), "pl": ("pol",), "ps": ("pus",),
    "pt": ("por",), "ro": ("rum", "ron"), "ru": ("rus",), "sa": ("san",), "sd": ("snd",),
    "si": ("sin",), "sk": ("slo", "slk"), "sl": ("slv",), "sn": ("sna",), "so": ("som",),
    "sq": ("alb", "sqi"), "sr": ("srp",), "su": ("sun",), "sv": ("swe",), "sw": ("swa",),
    "ta": ("tam",), "te": ("tel",), "tg": ("tgk",), "th": ("tha",), "tk": ("tuk",),
    "tl": ("tgl", "fil"), "tr": ("tur",), "tt": ("tat",), "uk": ("ukr",), "ur": ("urd",),
    "uz": ("uzb",), "vi": ("vie",), "yi": ("yid",), "yo": ("yor",), "yue": ("yue",),
    "zh": ("chi", "zho", "cmn"),
}
#: A configuration value naming a language (a code or whisperX's name of it); the config loader
#: reads it as Whisper's code. Plain `str` to the type checker.
Language = Annotated[str, "language"]
#: Tags that say "no language": undetermined, multiple, none applicable.
NO_LANGUAGE_TAGS = frozenset({"und", "mul", "zxx", "mis", ""})
#: Every tag a stream may carry -> the two-letter code it means (also two-letter tags as such).
_BY_TAG = {tag: code for code, tags in ISO_639_2.items() for tag in (code, *tags)}


def known(code: str) -> bool:
    """Whether `code` is a language this table (and Whisper) knows."""
    return code.lower() in ISO_639_2


def code_of(value: str) -> str | None:
    """Whisper's code for a language given as a code (`de`, `DE`) or as a name whisperX accepts
    (`German`, `german`, `Castilian` -> `es`); None for anything else (`xx`, `Klingon`)."""
    text = value.strip().lower()
    if text in ISO_639_2:
        return text
    return _names().get(text)


@functools.cache
def _names() -> dict[str, str]:
    """whisperX's language names -> codes (its CLI's `--language German`): its own table,
    aliases included (`castilian`, `flemish`, `burmese`). `whisperx.utils` imports no model
    library, so this costs milliseconds."""
    from whisperx.utils import TO_LANGUAGE_CODE

    return {name.lower(): code for name, code in TO_LANGUAGE_CODE.items() if code in ISO_639_2}


def code_of_tag(tag: str | None) -> str | None:
    """The two-letter code a stream's language tag means (`ger`, `deu`, `de`, `de-DE` -> `de`), or
    None for no tag, `und` and tags this table does not know."""
    if not tag:
        return None
    base = tag.strip().lower().replace("_", "-").split("-")[0]
    if base in NO_LANGUAGE_TAGS:
        return None
    return _BY_TAG.get(base)


def most_probable(ranked: list[tuple[str, float]],
                           allowed: tuple[str, ...]) -> tuple[str, float | None]:
    """The most probable language of CTranslate2's ranking (`[("<|de|>", 0.9), ...]`, every
    language token, most probable first), among `allowed` when that is not empty."""
    for token, probability in ranked:
        code = token[2:-2]
        if not allowed or code in allowed:
            return code, round(float(probability), 3)
    return allowed[0], None  # unreachable for Whisper's languages: the ranking holds them all
