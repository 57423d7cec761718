"""Country and state/province free text to ISO 3166 codes (CON-10), with pycountry.

pycountry knows official names in English (and, through ``lookup``, alpha-2/alpha-3 codes and common
names), but CRM data is typed by people: "USA", "U.S.", "Deutschland", "Vereinigte Staaten", "UK",
"England". ``synonyms.py`` holds those. Lookups run once per *distinct* text (a few hundred values even
in millions of records), never per record.
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np
import pandas as pd
import pycountry

from crm_pipelines.transform.frames import text
from crm_pipelines.transform.synonyms import COUNTRY_SYNONYMS, SUBDIVISION_SYNONYMS


def _key(value: str) -> str:
    """Case-, accent- and punctuation-insensitive form: "Île-de-France " -> "ile de france"."""
    folded = unicodedata.normalize("NFKD", value.replace("\u0131", "i").replace("İ", "I").casefold())
    folded = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join("".join(c if c.isalnum() else " " for c in folded).split())


@functools.lru_cache(maxsize=1)
def _country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for c in pycountry.countries:
        for name in (c.alpha_2, c.alpha_3, c.name, getattr(c, "official_name", None), getattr(c, "common_name", None)):
            if name:
                index.setdefault(_key(name), c.alpha_2)
    index.update({_key(k): v for k, v in COUNTRY_SYNONYMS.items()})
    return index


@functools.lru_cache(maxsize=1)
def _subdivision_index() -> dict[tuple[str, str], str]:
    index: dict[tuple[str, str], str] = {}
    for s in pycountry.subdivisions:
        country = s.country_code
        index.setdefault((country, _key(s.code.split("-", 1)[1])), s.code)
        index.setdefault((country, _key(s.name)), s.code)
    index.update({(k[0], _key(k[1])): v for k, v in SUBDIVISION_SYNONYMS.items()})
    return index


def country_code(value: str) -> str | None:
    return _country_index().get(_key(value))


def subdivision_code(country: str, value: str) -> str | None:
    return _subdivision_index().get((country, _key(value)))


def normalize_countries(values: pd.Series) -> pd.DataFrame:
    """``code`` (ISO 3166-1 alpha-2 or NA) and ``failed`` (text present but not recognised) per value."""
    raw = text(values).str.strip()
    raw = raw.mask(raw == "")
    uniq = raw.dropna().unique()
    lookup = pd.Series([country_code(v) for v in uniq], index=uniq, dtype="string")
    code = raw.map(lookup).astype("string")
    return pd.DataFrame({"code": code, "failed": raw.notna() & code.isna()}, index=values.index)


def normalize_states(country: pd.Series, values: pd.Series) -> pd.DataFrame:
    """``code`` (ISO 3166-2 such as ``US-CA``, NA) and ``failed`` per value; needs the record's country code."""
    raw = text(values).str.strip()
    raw = raw.mask(raw == "")
    # distinct (country, state) pairs are few: factorize the pair, look each up once, take back
    pairs = pd.MultiIndex.from_arrays([text(country).to_numpy(dtype=object), raw.to_numpy(dtype=object)])
    codes, uniq = pairs.factorize()
    found = np.array([subdivision_code(c, s) if isinstance(c, str) and isinstance(s, str) else None
                      for c, s in uniq], dtype=object)
    code = pd.Series(found[codes] if len(found) else np.full(len(codes), None, dtype=object),
                     index=values.index, dtype="string")
    return pd.DataFrame({"code": code, "failed": raw.notna() & code.isna()}, index=values.index)
