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
        index.setdefault((country, _key(s.code)), s.code)  # the form the sync writes ("US-CA"), read back
        index.setdefault((country, _key(s.name)), s.code)
    index.update({(k[0], _key(k[1])): v for k, v in SUBDIVISION_SYNONYMS.items()})
    return index


def country_code(value: str) -> str | None:
    return _country_index().get(_key(value))


def subdivision_code(country: str, value: str) -> str | None:
    return _subdivision_index().get((country, _key(value)))


def normalize_countries(values: pd.Series) -> pd.DataFrame:
    """``code`` (ISO 3166-1 alpha-2 or NA) and ``failed`` (text present but not recognised) per value."""
    codes, uniq = pd.factorize(pd.Series(values.to_numpy(dtype=object, na_value=None), dtype=object))
    found = np.array([country_code(v.strip()) if isinstance(v, str) and v.strip() else None for v in uniq],
                     dtype=object)
    blank = np.array([not (isinstance(v, str) and v.strip()) for v in uniq], dtype=bool)
    code = found[codes] if len(found) else np.full(len(codes), None, dtype=object)
    code = np.where(codes >= 0, code, None)
    present = (codes >= 0) & ~(blank[codes] if len(blank) else False)
    return pd.DataFrame({"code": pd.Series(code, dtype=object, index=values.index),
                         "failed": present & pd.isna(code)}, index=values.index)


def normalize_states(country: pd.Series, values: pd.Series) -> pd.DataFrame:
    """``code`` (ISO 3166-2 such as ``US-CA``, NA) and ``failed`` per value; needs the record's country code."""
    raw = pd.Series(values.to_numpy(dtype=object, na_value=None), dtype=object).str.strip()
    raw = raw.where(raw.notna() & (raw != ""), None)
    # distinct (country, state) pairs are few: factorize each side, combine the codes, look each pair up once
    c_code, c_uniq = pd.factorize(pd.Series(country.to_numpy(dtype=object), dtype=object))
    s_code, s_uniq = pd.factorize(pd.Series(raw.to_numpy(dtype=object, na_value=None), dtype=object))
    both = np.where((c_code >= 0) & (s_code >= 0), c_code * (len(s_uniq) + 1) + s_code, -1)
    p_code, p_uniq = pd.factorize(both)
    found = np.array([None if p < 0 else subdivision_code(c_uniq[p // (len(s_uniq) + 1)], s_uniq[p % (len(s_uniq) + 1)])
                      for p in p_uniq], dtype=object)
    code = pd.Series(found[p_code] if len(found) else np.full(len(p_code), None, dtype=object),
                     index=values.index, dtype=object)
    return pd.DataFrame({"code": code, "failed": raw.notna() & code.isna()}, index=values.index)
