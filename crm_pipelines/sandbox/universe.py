"""The sandbox universe: one deterministic generator of people, companies, deals and owners.

Every CRM sandbox (HubSpot, Salesforce, Dynamics 365) draws its records from the same
:class:`Universe`, so the three sandboxes overlap the way real CRMs of one business do, and a
sync test can know in advance what "the same person" is: **two records carry the same email
(after ``strip().lower()``) only if they belong to the same person** (``person_id``).

Usage::

    u = Universe(seed=42, scale=1_000)        # scale = number of people (>= 100)
    u.owners(); u.companies()                 # small, all at once
    for ch in u.chunks():                     # one pass over everything, chunk by chunk
        ch.people, ch.appearances, ch.deals, ch.deal_contacts
    u.manifest()                              # expected counts per CRM (one pass, cached)

``people_chunks()``, ``appearance_chunks()`` and ``deal_chunks()`` yield the same data per kind;
each of them regenerates the people of a chunk, so a sandbox that needs several kinds should
iterate ``chunks()`` once instead.

Determinism
-----------
Same ``(seed, scale)`` gives identical frames in any process on any machine (for the same
numpy / pandas / Faker versions): randomness comes from ``numpy.random.default_rng([seed, block,
stream])`` per block of 1,000 people, only ``random()`` uniforms are drawn, and only correctly
rounded float operations (+ - * / sqrt) are applied to them, so there is no ``hash()``, no set
order, no clock and no libm ``exp``/``log`` in the data. Faker is used only once per process to
build name/company/city pools from a fixed seed. The data does not depend on ``chunk_size``
(which must be a multiple of 1,000): chunks are whole blocks. The counts in the manifest do not
depend on the Faker version either (pool sizes never change how many random numbers are drawn).
All times lie in ``TIME_RANGE`` = 2019-01-01T00:00:00Z .. 2026-06-30T23:59:59.999Z, except the
``close_date`` of open deals, which lies 1..270 days after it (in the "future").

What the data looks like (approximate shares)
---------------------------------------------
owners
    ``min(200, max(5, scale // 2000))`` users; each exists in every CRM with the same lowercase
    email ``first.last@sandbox-sales.example.com`` (HubSpot owner, SF User, Dynamics systemuser).
companies (``scale // 8``)
    25% have no ``domain`` (then ``website`` is None too); ``domain`` is unique, lowercase, never
    a free-mail domain; ``website`` is a messy rendering of it ("https://www.x.de", "x.de",
    "www.x.de", "http://www.x.de", "https://x.de/en/" ...). Company *names* repeat (several
    "Müller GmbH"). In CRMs: HubSpot 80%, Salesforce 60%, Dynamics 45%, independently.
    Companies 0-4 are in all three CRMs; company 4 has no domain.
people (``scale``)
    85% work at a company (``company_id``); names from en_US, en_GB, en_IE, de_DE, fr_FR,
    es_ES, pl_PL and tr_TR pools (non-ASCII: "Jürgen Müller", "Zoë", "Łukasz Wiśniewski";
    apostrophes: "O'Brien", "D'Arcy"). ``email`` is the canonical form (lowercase, trimmed):
    6% have none (None), 4% of the rest are syntactically invalid ("x@", "x@@d.com", "x(at)d.com",
    "x@d,com"; ``email_valid`` False). Valid emails are unique across the universe. Local parts are
    ASCII-folded names in several formats (first.last, flast, f.last, first_last, first ...),
    apostrophes are kept for half of the apostrophe names ("siobhan.o'brien@..."). ~70% of people
    whose company has a domain use it; everyone else uses a free-mail domain (gmail.com, gmx.de,
    wp.pl, orange.fr, ...) with a number in the local part, 15% of those with a ``+tag``
    ("lukasz.wisniewski4821+news@gmail.com"). ``country_text``/``state_text`` are free text
    ("USA", "United States", "U.S.", "Deutschland", "DE", "España", "Polska", "Türkiye", "UK",
    "CA" = Canada; states "CA", "California", "Calif.", "Bayern", "NRW", "Île-de-France" ...),
    8% no country, 1.5% junk ("n/a", "Europe"); ``country_code``/``state_code`` give the ISO
    truth for tests (None where the text cannot be normalised). ``lifecycle_stage`` uses
    HubSpot's internal values and is independent of deals.
appearances (one row per CRM record of a person, ~1.8 per person)
    HubSpot 70% of people (``kind`` 'contact'), Salesforce 55% ('Contact' only 55%, 'Lead' only
    30%, both 15%; half of the "both" Leads are converted: ``converted_to_contact`` with
    ``converted_contact_record_id``), Dynamics 35% ('contact' 70%, 'lead' 20%, both 10%),
    independently (so many people are in two or three CRMs; ~9% in none). Extra duplicate
    records: HubSpot 3%, Salesforce 4%, Dynamics 4% of the people in that CRM.
    ``is_duplicate`` marks every record of a person in a CRM except the first in ``slot`` order
    (HubSpot: the main contact; SF: the Contact, else the Lead; Dynamics: the contact, else the
    lead), so a Lead next to a Contact of the same person is a duplicate.
    ``email`` is the email *as written in that CRM*: canonical, a case variant ("Jane.Doe@Example.Com",
    "JANE.DOE@EXAMPLE.COM"), a whitespace variant (" jane@x.com", "jane@x.com ", "jane@x.com\\t"),
    missing although the person has one, or - HubSpot duplicates only - an ``alternate``
    sub-address of the person ("jane+old@x.com"; never anybody else's email) or None. See
    ``email_variant``. HubSpot's uniqueness holds: within crm='hubspot' no two non-null emails
    are equal after ``strip().lower()``. Salesforce and Dynamics contain exact duplicates.
    ``company_id`` on a record is the person's company only if that company exists in the same
    CRM (else NA): a CRM record never references a company missing from that CRM.
    ``record_id = person_id * 8 + slot`` is unique and stable; sandboxes can derive their ids
    from it.
deals (~0.4 per person) and deal_contacts (1-3 per deal, people of the same block of 1,000,
    preferring colleagues at the deal's company)
    Pipelines ``PIPELINES`` (sales 70%, enterprise 30%); 25% won, 30% lost, the rest spread over
    the open stages. In CRMs: HubSpot 80%, Salesforce 60%, Dynamics 40%, but never in a CRM
    that lacks the deal's company. The first deals of chunk 0 cover every (pipeline, stage) pair
    and are in all three CRMs; person 0 has two won deals where the most recently *created*
    one (amount 1200) is not the most recently *closed* one (amount 5000). ``amount`` is None for
    5%; ``currency`` EUR for companies in DE/FR/ES/IE, else USD. ``close_date`` is a date
    (midnight UTC). ``deal_contacts.<crm>_record_id`` is the record the association points to in
    that CRM (HubSpot: the main contact; Salesforce: the Contact - OpportunityContactRole needs a
    Contact; Dynamics: the contact), NA where the deal or such a record is missing in that CRM.

Dtypes: ids ``int64`` (nullable ids ``Int64``), text ``string`` (missing = ``pd.NA``), flags
``bool``, money ``Float64``, times ``datetime64[ms, UTC]``.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import pandas as pd

__all__ = ["BLOCK", "CRMS", "PIPELINES", "TIME_RANGE", "Universe", "UniverseChunk"]

CRMS = ("hubspot", "salesforce", "dynamics")

PIPELINES: dict[str, list[str]] = {
    "sales": ["appointment", "qualified", "presentation", "decision", "contract", "won", "lost"],
    "enterprise": ["discovery", "solution", "proposal", "negotiation", "won", "lost"],
}

TIME_RANGE = (
    pd.Timestamp("2019-01-01T00:00:00.000", tz="UTC"),
    pd.Timestamp("2026-06-30T23:59:59.999", tz="UTC"),
)
_T0 = TIME_RANGE[0].value // 1_000_000  # epoch ms
_T1 = TIME_RANGE[1].value // 1_000_000
_DAY = 86_400_000

BLOCK = 1_000  # people per random block; chunks are whole blocks
_SHOWCASE = 16  # people 0..15 are hand-set examples; random deals never pick them
_OWNER_DOMAIN = "sandbox-sales.example.com"

# random streams: default_rng([seed, block, stream])
_S_COMPANIES, _S_OWNERS, _S_PEOPLE, _S_APPEAR, _S_DEALS = 1, 2, 3, 4, 5

# (pipeline, stage) pairs, flattened
_PAIRS = [(p, s) for p, stages in PIPELINES.items() for s in stages]
_PAIR_PIPE = np.array([p for p, _ in _PAIRS], dtype=object)
_PAIR_STAGE = np.array([s for _, s in _PAIRS], dtype=object)
_PAIR_WON = np.array([s == "won" for _, s in _PAIRS])
_PAIR_CLOSED = np.array([s in ("won", "lost") for _, s in _PAIRS])
_PIPE_OFF = np.array([0, len(PIPELINES["sales"])])
_PIPE_OPEN = np.array([len(v) - 2 for v in PIPELINES.values()])
_N_FORCED_DEALS = len(_PAIRS) + 2

# ------------------------------------------------------------------------------------------------
# static tables

_LOCALES = ("en_US", "de_DE", "fr_FR", "es_ES", "pl_PL", "tr_TR", "en_GB", "en_IE")
_COUNTRIES = ("US", "DE", "FR", "ES", "PL", "TR", "GB", "IE", "CA")
_COUNTRY_W = (0.30, 0.20, 0.10, 0.08, 0.07, 0.05, 0.08, 0.06, 0.06)
_COUNTRY_LOCALE = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0])
_LOCALE_W = (0.33, 0.20, 0.10, 0.08, 0.07, 0.06, 0.08, 0.08)
_EUR = np.array([c in ("DE", "FR", "ES", "IE") for c in _COUNTRIES])
_DIAL = ("1", "49", "33", "34", "48", "90", "44", "353", "1")
_TLD = (".com", ".de", ".fr", ".es", ".pl", ".com.tr", ".co.uk", ".ie", ".ca")

# country -> [(free text, weight)]
_COUNTRY_TEXT: dict[str, list[tuple[str, float]]] = {
    "US": [("United States", 30), ("USA", 30), ("US", 10), ("U.S.", 5), ("United States of America", 8),
           ("usa", 5), ("Vereinigte Staaten", 3), ("U.S.A.", 3), ("united states", 3)],
    "DE": [("Germany", 35), ("Deutschland", 35), ("DE", 10), ("germany", 5), ("Allemagne", 3),
           ("GER", 4), ("Deutschland ", 3)],
    "FR": [("France", 60), ("FR", 15), ("Frankreich", 10), ("france", 10)],
    "ES": [("Spain", 40), ("España", 30), ("ES", 10), ("Espana", 10), ("Spanien", 5)],
    "PL": [("Poland", 45), ("Polska", 35), ("PL", 10), ("Polen", 5)],
    "TR": [("Turkey", 35), ("Türkiye", 35), ("TR", 10), ("Turkiye", 10), ("Türkei", 5)],
    "GB": [("United Kingdom", 40), ("UK", 30), ("Great Britain", 10), ("England", 10), ("GB", 5)],
    "IE": [("Ireland", 60), ("IE", 10), ("Republic of Ireland", 15), ("Éire", 5), ("Irland", 5)],
    "CA": [("Canada", 70), ("CA", 15), ("Kanada", 5), ("canada", 5)],
}
# country -> [(free text, ISO 3166-2 code, weight)], probability that a state is filled in
_STATES: dict[str, tuple[float, list[tuple[str, str, float]]]] = {
    "US": (0.85, [("CA", "US-CA", 12), ("California", "US-CA", 10), ("Calif.", "US-CA", 2), ("ca", "US-CA", 1),
                  ("NY", "US-NY", 8), ("New York", "US-NY", 7), ("TX", "US-TX", 6), ("Texas", "US-TX", 5),
                  ("WA", "US-WA", 3), ("Washington", "US-WA", 2), ("FL", "US-FL", 4), ("Florida", "US-FL", 3),
                  ("IL", "US-IL", 3), ("Illinois", "US-IL", 2), ("MA", "US-MA", 3),
                  ("Massachusetts", "US-MA", 2)]),
    "DE": (0.5, [("Bayern", "DE-BY", 10), ("Bavaria", "DE-BY", 3), ("BY", "DE-BY", 2), ("Berlin", "DE-BE", 10),
                 ("NRW", "DE-NW", 5), ("Nordrhein-Westfalen", "DE-NW", 8), ("Hessen", "DE-HE", 6),
                 ("Hamburg", "DE-HH", 5), ("Baden-Württemberg", "DE-BW", 7), ("BW", "DE-BW", 2)]),
    "FR": (0.35, [("Île-de-France", "FR-IDF", 10), ("Ile de France", "FR-IDF", 4), ("IDF", "FR-IDF", 2),
                  ("Auvergne-Rhône-Alpes", "FR-ARA", 5), ("Bretagne", "FR-BRE", 4)]),
    "ES": (0.45, [("Madrid", "ES-MD", 10), ("Cataluña", "ES-CT", 6), ("Catalonia", "ES-CT", 3),
                  ("Catalunya", "ES-CT", 2), ("Andalucía", "ES-AN", 5), ("Andalucia", "ES-AN", 2)]),
    "PL": (0.4, [("Mazowieckie", "PL-MZ", 10), ("mazowieckie", "PL-MZ", 2), ("Małopolskie", "PL-MA", 6),
                 ("Śląskie", "PL-SL", 5), ("Slaskie", "PL-SL", 2)]),
    "TR": (0.4, [("İstanbul", "TR-34", 10), ("Istanbul", "TR-34", 6), ("Ankara", "TR-06", 5),
                 ("İzmir", "TR-35", 4), ("Izmir", "TR-35", 2)]),
    "GB": (0.3, [("England", "GB-ENG", 10), ("Scotland", "GB-SCT", 4), ("Wales", "GB-WLS", 2)]),
    "IE": (0.4, [("Dublin", "IE-D", 10), ("Co. Dublin", "IE-D", 4), ("Cork", "IE-CO", 4), ("Galway", "IE-G", 3)]),
    "CA": (0.85, [("ON", "CA-ON", 8), ("Ontario", "CA-ON", 8), ("QC", "CA-QC", 4), ("Québec", "CA-QC", 4),
                  ("Quebec", "CA-QC", 3), ("BC", "CA-BC", 4), ("British Columbia", "CA-BC", 4)]),
}
_JUNK_COUNTRIES = ("n/a", "Europe", "-", "Unknown", "EU", "Earth")
_CITIES_EXTRA = {
    "US": ["New York", "San Francisco", "Austin", "Chicago", "Boston", "Seattle"],
    "CA": ["Toronto", "Montréal", "Vancouver", "Calgary", "Ottawa", "Québec City"],
    "GB": ["London", "Manchester", "Edinburgh", "Bristol"],
    "IE": ["Dublin", "Cork", "Galway", "Limerick"],
    "TR": ["İstanbul", "Ankara", "İzmir", "Bursa"],
}
_FREEMAIL: dict[str, list[tuple[str, float]]] = {
    "US": [("gmail.com", 45), ("yahoo.com", 15), ("outlook.com", 12), ("hotmail.com", 10), ("icloud.com", 10),
           ("aol.com", 5), ("protonmail.com", 3)],
    "DE": [("gmx.de", 25), ("web.de", 25), ("gmail.com", 25), ("t-online.de", 15), ("posteo.de", 5),
           ("outlook.de", 5)],
    "FR": [("gmail.com", 35), ("orange.fr", 25), ("free.fr", 15), ("laposte.net", 10), ("hotmail.fr", 10),
           ("sfr.fr", 5)],
    "ES": [("gmail.com", 45), ("hotmail.es", 25), ("yahoo.es", 15), ("telefonica.net", 15)],
    "PL": [("wp.pl", 25), ("onet.pl", 20), ("gmail.com", 25), ("interia.pl", 15), ("o2.pl", 15)],
    "TR": [("gmail.com", 50), ("hotmail.com", 25), ("yandex.com.tr", 15), ("outlook.com", 10)],
    "GB": [("gmail.com", 40), ("btinternet.com", 15), ("hotmail.co.uk", 15), ("yahoo.co.uk", 15),
           ("outlook.com", 15)],
    "IE": [("gmail.com", 50), ("eircom.net", 20), ("hotmail.com", 20), ("outlook.ie", 10)],
}
_PLUS_TAGS = ("news", "shop", "crm", "work", "newsletter", "promo")
_ALT_TAGS = ("old", "private", "alt")  # HubSpot duplicates only; disjoint from _PLUS_TAGS
_LEGAL: dict[str, list[str]] = {
    "en_US": [" Inc", " Inc.", " LLC", " Corp", " Group", " & Co."],
    "de_DE": [" GmbH", " AG", " GmbH & Co. KG", " KG", " e.K.", " GmbH"],
    "fr_FR": [" SARL", " SA", " SAS", " et Fils"],
    "es_ES": [" S.L.", " S.A.", " S.L.U."],
    "pl_PL": [" Sp. z o.o.", " S.A.", " s.c."],
    "tr_TR": [" Ltd. Şti.", " A.Ş.", " Holding"],
    "en_GB": [" Ltd", " PLC", " & Sons", " LLP"],
    "en_IE": [" Ltd", " DAC", " Teoranta"],
}
_INDUSTRIES = ("Software", "Manufacturing", "Retail", "Banking", "Healthcare", "Education", "Consulting",
               "Logistics", "Energy", "Media", "Telecommunications", "Construction", "Insurance", "Automotive")
_LIFECYCLE = [("subscriber", 14), ("lead", 34), ("marketingqualifiedlead", 12), ("salesqualifiedlead", 10),
              ("opportunity", 10), ("customer", 13), ("evangelist", 3), ("other", 4)]
_PRODUCTS = ("Annual licence", "Onboarding package", "Support renewal", "Pilot", "Expansion", "Consulting",
             "Hardware refresh", "Enterprise plan", "Training", "Upgrade", "Multi-year agreement",
             "Jahreslizenz", "Mise en service", "Wdrożenie")
# deal amount buckets (lo, hi), picked uniformly, then uniform within
_AMOUNT_BUCKETS = np.array([(200, 1_000), (1_000, 5_000), (2_000, 10_000), (5_000, 25_000), (10_000, 50_000),
                            (25_000, 100_000), (50_000, 250_000), (100_000, 900_000)], dtype=float)
_EMPLOYEE_BUCKETS = np.array([(1, 10), (10, 50), (50, 250), (250, 1_000), (1_000, 10_000), (10_000, 100_000)],
                             dtype=float)
_EMPLOYEE_W = (25, 30, 22, 12, 8, 3)

# email local formats: (left, separator, right); parts 0 first, 1 first initial, 2 last, 3 last initial, 4 ""
_FMTS = [((0, ".", 2), 40), ((0, "", 2), 8), ((1, "", 2), 15), ((0, "_", 2), 5), ((0, "", 4), 4),
         ((2, ".", 0), 5), ((1, ".", 2), 13), ((0, ".", 3), 5), ((0, "-", 2), 5)]
_FMT_LEFT = np.array([f[0][0] for f in _FMTS])
_FMT_SEP = np.array([f[0][1] for f in _FMTS], dtype=object)
_FMT_RIGHT = np.array([f[0][2] for f in _FMTS])

# curated names that must exist in the pools (showcase people use them)
_CURATED_FIRST = {"de_DE": ["Jürgen", "Jörg", "Björn"], "pl_PL": ["Łukasz", "Małgorzata"],
                  "en_GB": ["Zoë", "Chloë"], "en_IE": ["Siobhán", "Seán"], "tr_TR": ["Çağlar"],
                  "fr_FR": ["Hélène", "François"], "en_US": ["Jane", "Max"]}
_CURATED_LAST = {"de_DE": ["Müller", "Weiß", "Schröder"], "pl_PL": ["Wiśniewski", "Łukaszewicz"],
                 "en_IE": ["O'Brien", "O'Connor", "D'Arcy"], "fr_FR": ["Dubois", "N'Diaye"],
                 "tr_TR": ["Öztürk"], "en_US": ["Doe", "Mustermann"]}

_POOL_SEED = 20_190_101

# ------------------------------------------------------------------------------------------------
# helpers


def _cum(weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    c = np.cumsum(w) / w.sum()
    c[-1] = 1.0
    return c


def _wpick(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Weighted pick: index i with probability proportional to weight i."""
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _upick(u: np.ndarray, n) -> np.ndarray:
    """Uniform pick in range(n) (n scalar or array, >= 1)."""
    return np.minimum((u * n).astype(np.int64), np.asarray(n) - 1)


def _between(lo: np.ndarray, hi, u: np.ndarray) -> np.ndarray:
    """Epoch ms uniformly in [lo, hi] (u in [0, 1))."""
    lo = np.asarray(lo, dtype=np.int64)
    return lo + ((np.asarray(hi, dtype=np.int64) - lo).astype(float) * u).astype(np.int64)


class _GroupTable:
    """Weighted choice among values, per group (e.g. the free-text variants of a country)."""

    def __init__(self, groups: list[list[tuple]]):
        width = max(len(g) for g in groups)
        self.cum = np.full((len(groups), width), 2.0)
        values: list[tuple] = []
        self.off = np.zeros(len(groups), dtype=np.int64)
        for i, g in enumerate(groups):
            self.off[i] = len(values)
            self.cum[i, : len(g)] = _cum([item[-1] for item in g])
            values.extend(g)
        self.columns = [np.array([v[j] for v in values], dtype=object) for j in range(len(values[0]) - 1)]

    def pick(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        idx = (u[:, None] >= self.cum[group]).sum(axis=1)
        return self.off[group] + idx


def _fold(text: str, german: bool) -> str:
    """ASCII-fold a name: German umlauts as ae/oe/ue where the name is German, accents dropped."""
    if german:
        text = text.translate(_DE_TRANSLIT)
    text = text.translate(_TRANSLIT)
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).encode("ascii", "ignore").decode()


_DE_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"})
_TRANSLIT = str.maketrans({"ß": "ss", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "\u0131": "i",
                           "æ": "ae", "Æ": "Ae", "œ": "oe", "Œ": "Oe", "þ": "th"})


def _email_part(name: str, german: bool, keep_apostrophe: bool) -> str:
    s = _fold(name, german).lower()
    keep = "abcdefghijklmnopqrstuvwxyz-" + ("'" if keep_apostrophe else "")
    s = "".join(c for c in s if c in keep).strip("-'")
    return s or "x"


def _slug(name: str, german: bool) -> str:
    s = _fold(name, german).lower()
    s = "".join(c if c.isalnum() else "-" for c in s)
    parts = [p for p in s.split("-") if p]
    out = ""
    for p in parts:
        if len(out) + len(p) > 28:
            break
        out = f"{out}-{p}" if out else p
    return out or "company"


def _ms(iso: str) -> int:
    """Epoch ms of a naive ISO time read as UTC."""
    return int(np.datetime64(iso, "ms").astype(np.int64))


def _to_str(values: np.ndarray) -> np.ndarray:
    return pd.Series(values).astype(str).to_numpy(dtype=object)


def _ts(ms: np.ndarray) -> pd.arrays.DatetimeArray:
    return pd.arrays.DatetimeArray._from_sequence(np.asarray(ms, dtype=np.int64).view("datetime64[ms]")).tz_localize(
        "UTC"
    )


def _s(values) -> pd.arrays.StringArray:
    return pd.array(np.asarray(values, dtype=object), dtype="string")


def _nullable_int(values: np.ndarray, mask: np.ndarray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.where(mask, values, 0).astype(np.int64), ~mask)


def _rows(names: str):
    keys = names.split()
    return type("Rows", (), {k: i for i, k in enumerate(keys)} | {"N": len(keys)})


_PR = _rows(
    "country_src country_pick locale_same locale_pick first last has_company company has_email company_domain "
    "fmt freemail plus plus_tag invalid invalid_form keep_apos ctext junk junk_pick state_has state city "
    "city_has phone_has phone job_has job owner_same owner lifecycle created modified "
    "in_hs hs_dup in_sf sf_kind sf_conv sf_dup in_dyn dyn_kind dyn_dup"
)
_AR = _rows(" ".join(f"var{s} sub{s} created{s} modified{s}" for s in range(8)) + " alt_tag convert")
_DR = _rows(
    "primary pipeline stage open_stage bucket amount has_amount cents created duration future modified "
    "in_hs in_sf in_dyn deal_type has_desc desc product n_extra extra1 extra2"
)
_CR = _rows(
    "country ctext state_has state city city_has name_form name l1 l2 legal has_domain tld_generic website "
    "phone_has phone industry_has industry emp_bucket emp emp_has has_revenue revenue owner created modified "
    "in_hs in_sf in_dyn"
)

# appearance slots: (crm, kind when it is the person's own kind)
_SLOT_CRM = np.array(["hubspot", "hubspot", "salesforce", "salesforce", "salesforce", "dynamics", "dynamics",
                      "dynamics"], dtype=object)
_VARIANTS = np.array(["canonical", "case", "whitespace", "missing", "alternate"], dtype=object)


# ------------------------------------------------------------------------------------------------
# pools (Faker, once per process)


class _Pools:
    def __init__(self) -> None:
        from faker import Faker

        first: list[list[str]] = []
        last: list[list[str]] = []
        companies: list[list[str]] = []
        cities: dict[str, list[str]] = {}
        jobs: list[str] = []
        sentences: list[str] = []
        for i, loc in enumerate(_LOCALES):
            fake = Faker(loc)
            fake.seed_instance(_POOL_SEED + i)
            first.append(list(dict.fromkeys(_CURATED_FIRST.get(loc, []) + [fake.first_name() for _ in range(400)])))
            last.append(list(dict.fromkeys(_CURATED_LAST.get(loc, []) + [fake.last_name() for _ in range(400)])))
            companies.append(list(dict.fromkeys(fake.company() for _ in range(250))))
            cities[loc] = list(dict.fromkeys(fake.city() for _ in range(60)))
            if loc in ("en_US", "de_DE", "fr_FR"):
                jobs.extend(fake.job() for _ in range(120))
                sentences.extend(fake.sentence(nb_words=10) for _ in range(60))
        self.locale_cum = _cum(_LOCALE_W)
        self.country_cum = _cum(_COUNTRY_W)

        # names, flattened per locale
        def flat(groups: list[list[str]]):
            off = np.cumsum([0] + [len(g) for g in groups[:-1]])
            n = np.array([len(g) for g in groups])
            locs = [i for i, g in enumerate(groups) for _ in g]
            return np.array([x for g in groups for x in g], dtype=object), off, n, locs

        self.first, self.first_off, self.first_n, floc = flat(first)
        self.first_mail = np.array([_email_part(x, floc[i] == 1, False) for i, x in enumerate(self.first)],
                                   dtype=object)
        self.first_init = np.array([x[0] for x in self.first_mail], dtype=object)
        self.last, self.last_off, self.last_n, lloc = flat(last)
        self.last_keep = np.array([_email_part(x, lloc[i] == 1, True) for i, x in enumerate(self.last)],
                                  dtype=object)
        self.last_drop = np.array([_email_part(x, lloc[i] == 1, False) for i, x in enumerate(self.last)],
                                  dtype=object)
        self.last_init = np.array([x[0] for x in self.last_drop], dtype=object)
        self.last_slug = np.array([_slug(x, lloc[i] == 1) for i, x in enumerate(self.last)], dtype=object)

        self.co_name, self.co_off, self.co_n, cloc = flat(companies)
        self.co_slug = np.array([_slug(x, cloc[i] == 1) for i, x in enumerate(self.co_name)], dtype=object)
        legal = [_LEGAL[loc] for loc in _LOCALES]
        self.legal, self.legal_off, self.legal_n, _ = flat(legal)
        self.legal_slug = np.array([{" GmbH": "-gmbh", " AG": "-ag"}.get(x, "") for x in self.legal], dtype=object)

        city_groups = []
        for c in _COUNTRIES:
            loc = _LOCALES[_COUNTRY_LOCALE[_COUNTRIES.index(c)]]
            base = [] if c == "CA" else cities[loc]
            city_groups.append(list(dict.fromkeys(_CITIES_EXTRA.get(c, []) + base)))
        self.city, self.city_off, self.city_n, _ = flat(city_groups)

        self.jobs = np.array(list(dict.fromkeys(jobs)), dtype=object)
        self.sentences = np.array(list(dict.fromkeys(sentences)), dtype=object)
        self.products = np.array(_PRODUCTS, dtype=object)

        self.ctext = _GroupTable([_COUNTRY_TEXT[c] for c in _COUNTRIES])
        self.state_p = np.array([_STATES[c][0] for c in _COUNTRIES])
        self.states = _GroupTable([_STATES[c][1] for c in _COUNTRIES])
        self.country_codes = np.array(_COUNTRIES, dtype=object)
        self.junk = np.array(_JUNK_COUNTRIES, dtype=object)
        self.freemail = _GroupTable([_FREEMAIL[_COUNTRIES[int(_COUNTRY_LOCALE.tolist().index(i))]]
                                     for i in range(len(_LOCALES))])
        fm = self.freemail.columns[0]
        self.freemail_comma = np.array([d[: d.rfind(".")] + "," + d[d.rfind(".") + 1:] for d in fm], dtype=object)
        self.freemail_set = frozenset(fm)
        self.lifecycle = np.array([x for x, _ in _LIFECYCLE], dtype=object)
        self.lifecycle_cum = _cum([w for _, w in _LIFECYCLE])

        # phone numbers: a fixed pool per country (numbers repeat across people, like switchboards)
        rng = np.random.default_rng([_POOL_SEED, 0, 99])
        phones = []
        for dial in _DIAL:
            u = rng.random((4, 4000))
            area = (200 + (u[0] * 790).astype(int)).tolist()
            mid = (100 + (u[1] * 900).astype(int)).tolist()
            end = (u[2] * 10_000).astype(int).tolist()
            fmt = _wpick(u[3], _cum([50, 25, 15, 10])).tolist()
            group = []
            for a, m, e, f in zip(area, mid, end, fmt, strict=True):
                if f == 0:
                    group.append(f"+{dial} {a} {m}{e:04d}")
                elif f == 1:
                    group.append(f"({a}) {m}-{e:04d}" if dial == "1" else f"0{a} {m}{e:04d}")
                elif f == 2:
                    group.append(f"+{dial}{a}{m}{e:04d}")
                else:
                    group.append(f"+{dial}-{a}-{m}-{e:04d}")
            phones.append(group)
        self.phone, self.phone_off, self.phone_n, _ = flat(phones)

    def index(self, pool: np.ndarray, value: str) -> int:
        return int(np.flatnonzero(pool == value)[0])


@functools.lru_cache(maxsize=1)
def _pools() -> _Pools:
    return _Pools()


# ------------------------------------------------------------------------------------------------


class UniverseChunk(NamedTuple):
    chunk: int
    people: pd.DataFrame
    appearances: pd.DataFrame
    deals: pd.DataFrame
    deal_contacts: pd.DataFrame


class _Core:
    """Per-chunk person arrays shared by people, appearances and deals."""

    __slots__ = ("U", "a", "alt_email", "cid", "country", "created", "e", "email", "email_valid", "fi", "has_co",
                 "k", "li", "modified", "n", "owner", "pid", "sf_conv", "slots")


class Universe:
    """The deterministic sandbox universe for ``(seed, scale)``; see the module docstring."""

    def __init__(self, seed: int, scale: int, chunk_size: int = 50_000):
        for name, v in (("seed", seed), ("scale", scale), ("chunk_size", chunk_size)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer):
                raise TypeError(f"{name} must be an int, got {v!r}")
        if seed < 0:
            raise ValueError("seed must be >= 0")
        if scale < 100:
            raise ValueError(f"scale (number of people) must be >= 100, got {scale}")
        if chunk_size < BLOCK or chunk_size % BLOCK:
            raise ValueError(f"chunk_size must be a positive multiple of {BLOCK}, got {chunk_size}")
        self.seed = int(seed)
        self.scale = int(scale)
        self.chunk_size = int(chunk_size)
        self.n_companies = self.scale // 8
        self.n_owners = min(200, max(5, self.scale // 2000))
        self.n_chunks = -(-self.scale // self.chunk_size)
        self._manifest: dict | None = None
        self._co: dict[str, np.ndarray] | None = None
        self._companies: pd.DataFrame | None = None
        self._owners: pd.DataFrame | None = None

    def __repr__(self) -> str:
        return f"Universe(seed={self.seed}, scale={self.scale}, chunk_size={self.chunk_size})"

    # -------------------------------------------------------------------------------------------
    # randomness

    def _uniforms(self, stream: int, blocks: range, nvars: int, counts: list[int]) -> np.ndarray:
        parts = [np.random.default_rng([self.seed, b, stream]).random((nvars, c)) for b, c in zip(blocks, counts,
                                                                                                  strict=True)]
        return np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]

    def _blocks(self, k: int) -> range:
        per = self.chunk_size // BLOCK
        n_blocks = -(-self.scale // BLOCK)
        return range(k * per, min((k + 1) * per, n_blocks))

    def _block_size(self, b: int) -> int:
        return min((b + 1) * BLOCK, self.scale) - b * BLOCK

    def _block_deals(self, b: int) -> int:
        return self._block_size(b) * 2 // 5 + (_N_FORCED_DEALS if b == 0 else 0)

    def _deal_offset(self, b: int) -> int:
        return 0 if b == 0 else _N_FORCED_DEALS + b * (BLOCK * 2 // 5)

    # -------------------------------------------------------------------------------------------
    # owners and companies

    def owners(self) -> pd.DataFrame:
        """owner_id, first_name, last_name, email (lowercase; the same in every CRM)."""
        if self._owners is None:
            p = _pools()
            u = np.random.default_rng([self.seed, 0, _S_OWNERS]).random((3, self.n_owners))
            loc = _wpick(u[0], p.locale_cum)
            fi = p.first_off[loc] + _upick(u[1], p.first_n[loc])
            li = p.last_off[loc] + _upick(u[2], p.last_n[loc])
            emails, seen = [], {}
            for f, last in zip(p.first_mail[fi], p.last_drop[li], strict=True):
                local = f"{f}.{last}"
                seen[local] = seen.get(local, 0) + 1
                suffix = str(seen[local]) if seen[local] > 1 else ""
                emails.append(f"{local}{suffix}@{_OWNER_DOMAIN}")
            self._owners = pd.DataFrame({
                "owner_id": np.arange(self.n_owners, dtype=np.int64),
                "first_name": _s(p.first[fi]),
                "last_name": _s(p.last[li]),
                "email": _s(emails),
            })
        return self._owners.copy()

    def _company_arrays(self) -> dict[str, np.ndarray]:
        if self._co is not None:
            return self._co
        p = _pools()
        n = self.n_companies
        U = np.random.default_rng([self.seed, 0, _S_COMPANIES]).random((_CR.N, n))
        cid = np.arange(n, dtype=np.int64)
        country = _wpick(U[_CR.country], p.country_cum)
        loc = _COUNTRY_LOCALE[country]
        # name: a Faker company name, "<Last><legal>" or "<Last> & <Last2><legal>"
        form = _wpick(U[_CR.name_form], _cum([45, 35, 20]))
        ni = p.co_off[loc] + _upick(U[_CR.name], p.co_n[loc])
        l1 = p.last_off[loc] + _upick(U[_CR.l1], p.last_n[loc])
        l2 = p.last_off[loc] + _upick(U[_CR.l2], p.last_n[loc])
        lg = p.legal_off[loc] + _upick(U[_CR.legal], p.legal_n[loc])
        name = p.co_name[ni].copy()
        slug = p.co_slug[ni].copy()
        m1, m2 = form == 1, form == 2
        name[m1] = p.last[l1[m1]] + p.legal[lg[m1]]
        slug[m1] = p.last_slug[l1[m1]] + p.legal_slug[lg[m1]]
        name[m2] = p.last[l1[m2]] + " & " + p.last[l2[m2]] + p.legal[lg[m2]]
        slug[m2] = p.last_slug[l1[m2]] + "-" + p.last_slug[l2[m2]] + p.legal_slug[lg[m2]]
        tld = np.array(_TLD, dtype=object)[country]
        tld[U[_CR.tld_generic] < 0.25] = ".com"
        has_domain = U[_CR.has_domain] >= 0.25
        has_domain[:4] = True
        has_domain[4] = False
        key = slug + tld
        clash = pd.Series(key).duplicated().to_numpy() | pd.Series(key).isin(p.freemail_set).to_numpy()
        clash &= has_domain
        slug[clash] = slug[clash] + "-" + _to_str(cid[clash])
        domain = slug + tld
        domain_comma = slug + "," + np.array([t[1:] for t in tld], dtype=object)
        web_forms = [("https://www.", ""), ("https://", ""), ("http://www.", ""), ("www.", ""), ("", ""),
                     ("https://www.", "/"), ("https://", "/en/"), ("HTTPS://WWW.", "")]
        wf = _wpick(U[_CR.website], _cum([40, 15, 10, 15, 10, 5, 4, 1]))
        pre = np.array([w[0] for w in web_forms], dtype=object)[wf]
        post = np.array([w[1] for w in web_forms], dtype=object)[wf]
        website = np.where(has_domain, pre + domain + post, None)
        ctext_i = p.ctext.pick(country, U[_CR.ctext])
        has_state = U[_CR.state_has] < p.state_p[country]
        state_i = p.states.pick(country, U[_CR.state])
        city = p.city[p.city_off[country] + _upick(U[_CR.city], p.city_n[country])]
        phone = p.phone[p.phone_off[country] + _upick(U[_CR.phone], p.phone_n[country])]
        eb = _wpick(U[_CR.emp_bucket], _cum(_EMPLOYEE_W))
        lo, hi = _EMPLOYEE_BUCKETS[eb, 0], _EMPLOYEE_BUCKETS[eb, 1]
        employees = (lo + (hi - lo) * U[_CR.emp]).astype(np.int64)
        revenue = np.floor(employees * (40_000.0 + 160_000.0 * U[_CR.revenue]) / 1000.0) * 1000.0
        created = _between(_T0, _T1, np.sqrt(U[_CR.created]))
        modified = _between(created, _T1, U[_CR.modified])
        flags = {"in_hubspot": U[_CR.in_hs] < 0.80, "in_salesforce": U[_CR.in_sf] < 0.60,
                 "in_dynamics": U[_CR.in_dyn] < 0.45}
        for f in flags.values():
            f[:5] = True
        self._co = {
            "country": country, "has_domain": has_domain, "domain": np.where(has_domain, domain, None),
            "domain_comma": domain_comma, "name": name, "owner": _upick(U[_CR.owner], self.n_owners),
            "created": created, **flags,
        }
        self._companies = pd.DataFrame({
            "company_id": cid,
            "name": _s(name),
            "domain": _s(self._co["domain"]),
            "website": _s(website),
            "phone": _s(np.where(U[_CR.phone_has] < 0.85, phone, None)),
            "city": _s(np.where(U[_CR.city_has] < 0.9, city, None)),
            "state_text": _s(np.where(has_state, p.states.columns[0][state_i], None)),
            "state_code": _s(np.where(has_state, p.states.columns[1][state_i], None)),
            "country_text": _s(p.ctext.columns[0][ctext_i]),
            "country_code": _s(p.country_codes[country]),
            "industry": _s(np.where(U[_CR.industry_has] < 0.9,
                                    np.array(_INDUSTRIES, dtype=object)[_upick(U[_CR.industry], len(_INDUSTRIES))],
                                    None)),
            "num_employees": pd.arrays.IntegerArray(employees, U[_CR.emp_has] >= 0.9),
            "annual_revenue": pd.arrays.FloatingArray(revenue, U[_CR.has_revenue] >= 0.7),
            "owner_id": self._co["owner"],
            "created_at": _ts(created),
            "modified_at": _ts(modified),
            **flags,
        })
        return self._co

    def companies(self) -> pd.DataFrame:
        """All companies (``scale // 8`` rows); see the module docstring for the columns' meaning."""
        self._company_arrays()
        assert self._companies is not None
        return self._companies.copy()

    # -------------------------------------------------------------------------------------------
    # people

    def _core(self, k: int) -> _Core:
        p = _pools()
        co = self._company_arrays()
        blocks = self._blocks(k)
        a = blocks.start * BLOCK
        e = min(blocks.stop * BLOCK, self.scale)
        n = e - a
        c = _Core()
        c.k, c.a, c.e, c.n = k, a, e, n
        c.U = U = self._uniforms(_S_PEOPLE, blocks, _PR.N, [self._block_size(b) for b in blocks])
        pid = c.pid = np.arange(a, e, dtype=np.int64)
        blk = pid // BLOCK
        cstart = blk * BLOCK // 8
        ccount = np.minimum((blk + 1) * BLOCK, self.scale) // 8 - cstart
        has_co = (U[_PR.has_company] < 0.85) & (ccount > 0)
        cid = np.where(has_co, cstart + _upick(U[_PR.company], np.maximum(ccount, 1)), -1)
        cidc = np.maximum(cid, 0)
        rand_country = _wpick(U[_PR.country_pick], p.country_cum)
        country = np.where(has_co & (U[_PR.country_src] < 0.7), co["country"][cidc], rand_country)
        loc = np.where(U[_PR.locale_same] < 0.8, _COUNTRY_LOCALE[country], _wpick(U[_PR.locale_pick], p.locale_cum))
        fi = p.first_off[loc] + _upick(U[_PR.first], p.first_n[loc])
        li = p.last_off[loc] + _upick(U[_PR.last], p.last_n[loc])
        has_email = U[_PR.has_email] >= 0.06
        invalid = has_email & (U[_PR.invalid] < 0.04)
        keep_apos = U[_PR.keep_apos] < 0.5
        plus = U[_PR.plus] < 0.15
        use_co = has_co & co["has_domain"][cidc] & (U[_PR.company_domain] < 0.7)
        fmt = _wpick(U[_PR.fmt], _cum([w for _, w in _FMTS]))
        invalid_form = _upick(U[_PR.invalid_form], 4)

        # CRM membership
        in_hs = U[_PR.in_hs] < 0.70
        in_sf = U[_PR.in_sf] < 0.55
        sf_kind = np.where(in_sf, 1 + _wpick(U[_PR.sf_kind], _cum([55, 30, 15])), 0)  # 1 C, 2 L, 3 both
        in_dyn = U[_PR.in_dyn] < 0.35
        dyn_kind = np.where(in_dyn, 1 + _wpick(U[_PR.dyn_kind], _cum([70, 20, 10])), 0)
        hs_dup = in_hs & (U[_PR.hs_dup] < 0.03)
        sf_dup = in_sf & (U[_PR.sf_dup] < 0.04)
        dyn_dup = in_dyn & (U[_PR.dyn_dup] < 0.04)
        sf_conv = (sf_kind == 3) & (U[_PR.sf_conv] < 0.5)

        if a == 0:  # showcase people: one of each kind of mess, deterministic at any scale
            s = slice(0, _SHOWCASE)
            names = [("de_DE", "Jürgen", "Müller"), ("en_IE", "Siobhán", "O'Brien"),
                     ("pl_PL", "Łukasz", "Wiśniewski"), ("en_GB", "Zoë", "Dubois"),
                     ("en_US", "Max", "Mustermann"), ("en_US", "Jane", "Doe")]
            for i, (_, f, last) in enumerate(names):
                fi[i] = p.index(p.first, f)
                li[i] = p.index(p.last, last)
            cid[:5] = [0, 1, 2, 3, 4]
            has_co[:5] = True
            cidc = np.maximum(cid, 0)
            country[:6] = [1, 0, 0, 4, 1, 0]
            has_email[s] = True
            invalid[s] = False
            plus[s] = False
            fmt[:6] = 0
            keep_apos[1] = True
            use_co[:6] = [True, True, False, True, False, False]
            plus[2] = True
            has_email[4] = False
            invalid[5], invalid_form[5] = True, 1
            invalid[6], invalid_form[6], use_co[6] = True, 0, False
            in_hs[s], in_sf[s], in_dyn[s] = True, True, True
            sf_kind[s], dyn_kind[s] = 1, 1
            hs_dup[s], sf_dup[s], dyn_dup[s], sf_conv[s] = False, False, False, False
            sf_kind[4], dyn_kind[5] = 2, 2
            hs_dup[7], sf_dup[7], dyn_dup[7] = True, True, True
            sf_kind[8], sf_conv[8], dyn_kind[8] = 3, True, 3
            sf_kind[9] = 3
        c.has_co, c.cid, c.country, c.fi, c.li = has_co, cid, country, fi, li

        # email: local part from the ASCII-folded name
        f_mail = p.first_mail[fi]
        l_mail = np.where(keep_apos, p.last_keep[li], p.last_drop[li])
        parts = np.stack([f_mail, p.first_init[fi], l_mail, p.last_init[li], np.full(n, "", dtype=object)])
        cols = np.arange(n)
        local = parts[_FMT_LEFT[fmt], cols] + _FMT_SEP[fmt] + parts[_FMT_RIGHT[fmt], cols]
        free = ~use_co
        fm_i = p.freemail.pick(loc, U[_PR.freemail])
        domain = np.where(use_co, co["domain"][cidc], p.freemail.columns[0][fm_i])
        domain_comma = np.where(use_co, co["domain_comma"][cidc], p.freemail_comma[fm_i])
        # free-mail locals carry a number unique per person (a bijection of person_id) ...
        mod = 10 ** max(5, len(str(self.scale)) + 1)
        num = (pid * 7_368_787 + 1_234_567 * (self.seed % 97 + 1)) % mod
        fidx = np.flatnonzero(free & has_email)
        local[fidx] = local[fidx] + _to_str(num[fidx])
        # ... and company locals are made unique per domain (the domain's people are all in this chunk)
        cidx = np.flatnonzero(use_co & has_email)
        if len(cidx):
            dup = pd.Series(local[cidx] + "@" + domain[cidx]).duplicated().to_numpy()
            d = cidx[dup]
            local[d] = local[d] + _to_str(num[d])
        base_local = local
        pidx = np.flatnonzero(free & has_email & plus)
        full_local = local.copy()
        full_local[pidx] = local[pidx] + "+" + np.array(_PLUS_TAGS, dtype=object)[
            _upick(U[_PR.plus_tag][pidx], len(_PLUS_TAGS))]
        email = np.full(n, None, dtype=object)
        ok = has_email & ~invalid
        email[ok] = full_local[ok] + "@" + domain[ok]
        inv_form = np.where(free, invalid_form, np.maximum(invalid_form, 1))
        for form, (sep, dom) in enumerate([("@", None), ("@@", domain), ("(at)", domain), ("@", domain_comma)]):
            m = np.flatnonzero(invalid & (inv_form == form))
            email[m] = full_local[m] + sep + (dom[m] if dom is not None else "")
        c.email, c.email_valid = email, ok
        alt_tag = np.array(_ALT_TAGS, dtype=object)
        # HubSpot duplicates: a sub-address of the person's own valid email (never anybody else's)
        c.alt_email = np.where(ok, base_local + "+" + alt_tag[_upick(U[_PR.plus_tag], len(_ALT_TAGS))] + "@" + domain,
                               None)

        created = _between(_T0, _T1, np.sqrt(U[_PR.created]))
        if a == 0:  # the showcase people exist early (their forced deals start in 2021)
            created[:_SHOWCASE] = _T0 + (created[:_SHOWCASE] - _T0) // 8
        c.created = created
        c.modified = _between(created, _T1, U[_PR.modified])
        own_rand = _upick(U[_PR.owner], self.n_owners)
        c.owner = np.where(has_co & (U[_PR.owner_same] < 0.8), co["owner"][cidc], own_rand)
        c.slots = np.stack([in_hs, hs_dup, (sf_kind == 1) | (sf_kind == 3), sf_kind >= 2, sf_dup,
                            (dyn_kind == 1) | (dyn_kind == 3), dyn_kind >= 2, dyn_dup])
        c.sf_conv = sf_conv
        return c

    def _people_frame(self, c: _Core) -> pd.DataFrame:
        p = _pools()
        U = c.U
        country = c.country
        junk = U[_PR.junk] < 0.015
        no_country = (U[_PR.junk] >= 0.015) & (U[_PR.junk] < 0.095)
        ctext_i = p.ctext.pick(country, U[_PR.ctext])
        ctext = np.where(junk, p.junk[_upick(U[_PR.junk_pick], len(p.junk))], p.ctext.columns[0][ctext_i])
        ctext[no_country] = None
        ccode = np.where(junk | no_country, None, p.country_codes[country])
        has_state = ~(junk | no_country) & (U[_PR.state_has] < p.state_p[country])
        state_i = p.states.pick(country, U[_PR.state])
        city = p.city[p.city_off[country] + _upick(U[_PR.city], p.city_n[country])]
        phone = p.phone[p.phone_off[country] + _upick(U[_PR.phone], p.phone_n[country])]
        job = p.jobs[_upick(U[_PR.job], len(p.jobs))]
        if c.a == 0:
            ctext[:4] = ["Deutschland", "USA", "United States", "Polska"]
            ccode[:4] = ["DE", "US", "US", "PL"]
            has_state[:4] = [False, True, False, False]
            state_i[1] = p.states.off[0]  # "CA" (California)
        return pd.DataFrame({
            "person_id": c.pid,
            "first_name": _s(p.first[c.fi]),
            "last_name": _s(p.last[c.li]),
            "email": _s(c.email),
            "email_valid": c.email_valid,
            "phone": _s(np.where(U[_PR.phone_has] < 0.75, phone, None)),
            "job_title": _s(np.where(U[_PR.job_has] < 0.75, job, None)),
            "city": _s(np.where(U[_PR.city_has] < 0.8, city, None)),
            "state_text": _s(np.where(has_state, p.states.columns[0][state_i], None)),
            "state_code": _s(np.where(has_state, p.states.columns[1][state_i], None)),
            "country_text": _s(ctext),
            "country_code": _s(ccode),
            "company_id": _nullable_int(c.cid, c.has_co),
            "owner_id": c.owner,
            "lifecycle_stage": _s(p.lifecycle[_wpick(U[_PR.lifecycle], p.lifecycle_cum)]),
            "created_at": _ts(c.created),
            "modified_at": _ts(c.modified),
        })

    # -------------------------------------------------------------------------------------------
    # appearances

    def _appearance_frame(self, c: _Core) -> pd.DataFrame:
        co = self._company_arrays()
        blocks = self._blocks(c.k)
        V = self._uniforms(_S_APPEAR, blocks, _AR.N, [self._block_size(b) for b in blocks])
        S = c.slots
        has_c_sf, has_c_dyn = S[2], S[5]
        # per-slot times over all people of the chunk, then gathered
        created = np.empty((8, c.n), dtype=np.int64)
        modified = np.empty((8, c.n), dtype=np.int64)
        for s in range(8):
            u = V[4 * s + 2]
            created[s] = _between(c.created, _T1, u * u)
            modified[s] = _between(created[s], _T1, V[4 * s + 3])
        # converted Leads: the Contact is created from the Lead, the Lead last changes then
        conv = c.sf_conv
        created[2, conv] = _between(created[3, conv], _T1, 0.5 * V[_AR.convert, conv])
        modified[2, conv] = _between(created[2, conv], _T1, V[4 * 2 + 3, conv])
        modified[3, conv] = created[2, conv]

        slot_idx, loc_idx = np.nonzero(S)  # slot-major
        order = np.lexsort((slot_idx, loc_idx))
        slot_idx, loc_idx = slot_idx[order], loc_idx[order]
        pid = c.pid[loc_idx]
        m = len(pid)
        is_dup = np.isin(slot_idx, (1, 4, 7)) | ((slot_idx == 3) & has_c_sf[loc_idx]) | (
            (slot_idx == 6) & has_c_dyn[loc_idx])
        kind = np.empty(m, dtype=object)
        kind[slot_idx <= 1] = "contact"
        sf_contact = (slot_idx == 2) | ((slot_idx == 4) & has_c_sf[loc_idx])
        kind[(slot_idx >= 2) & (slot_idx <= 4)] = "Lead"
        kind[sf_contact] = "Contact"
        dyn_contact = (slot_idx == 5) | ((slot_idx == 7) & has_c_dyn[loc_idx])
        kind[slot_idx >= 5] = "lead"
        kind[dyn_contact] = "contact"

        # email variant per record
        uv = V[4 * slot_idx, loc_idx]
        sub = V[4 * slot_idx + 1, loc_idx]
        person_email = c.email[loc_idx]
        has = pd.notna(person_email)
        variant = np.where(is_dup, _wpick(uv, _cum([60, 20, 10, 10])), _wpick(uv, _cum([79, 10, 6, 5])))
        hs_dup = slot_idx == 1
        variant[hs_dup] = np.where(c.email_valid[loc_idx[hs_dup]] & (uv[hs_dup] < 0.6), 4, 3)
        variant[~has] = 3
        if c.a == 0:  # showcase: person 0 SF case / Dynamics whitespace, person 1 HubSpot whitespace
            for person, slot, v in ((0, 2, 1), (0, 5, 2), (1, 0, 2), (1, 2, 0), (1, 5, 1), (0, 0, 0),
                                    (7, 1, 4), (7, 2, 0), (7, 4, 0), (7, 5, 0), (7, 7, 0)):
                variant[(loc_idx == person) & (slot_idx == slot)] = v
        email = np.full(m, None, dtype=object)
        for v in (0, 1, 2):
            idx = np.flatnonzero(variant == v)
            email[idx] = person_email[idx]
        idx = np.flatnonzero(variant == 4)
        email[idx] = c.alt_email[loc_idx[idx]]
        idx = np.flatnonzero(variant == 1)
        if len(idx):
            ser = pd.Series(email[idx], dtype=object)
            sv = _wpick(sub[idx], _cum([60, 25, 15]))
            email[idx] = np.where(sv == 0, ser.str.title(), np.where(sv == 1, ser.str.upper(), ser.str.capitalize()))
        idx = np.flatnonzero(variant == 2)
        if len(idx):
            sv = _wpick(sub[idx], _cum([35, 35, 20, 10]))
            pre = np.array(["  ", "", " ", ""], dtype=object)[sv]
            post = np.array(["", " ", " ", "\t"], dtype=object)[sv]
            email[idx] = pre + email[idx] + post
        rec_valid = ((variant <= 2) & c.email_valid[loc_idx]) | (variant == 4)

        crm = _SLOT_CRM[slot_idx]
        cid = c.cid[loc_idx]
        cidc = np.maximum(cid, 0)
        co_in = np.zeros(m, dtype=bool)
        for name, lo, hi in (("in_hubspot", 0, 1), ("in_salesforce", 2, 4), ("in_dynamics", 5, 7)):
            sel = (slot_idx >= lo) & (slot_idx <= hi)
            co_in[sel] = co[name][cidc[sel]]
        co_in &= cid >= 0
        converted = (slot_idx == 3) & c.sf_conv[loc_idx]
        return pd.DataFrame({
            "record_id": pid * 8 + slot_idx,
            "crm": _s(crm),
            "kind": _s(kind),
            "person_id": pid,
            "slot": slot_idx.astype(np.int8),
            "email": _s(email),
            "email_variant": _s(_VARIANTS[variant]),
            "email_valid": rec_valid,
            "is_duplicate": is_dup,
            "converted_to_contact": converted,
            "converted_contact_record_id": _nullable_int(pid * 8 + 2, converted),
            "company_id": _nullable_int(cid, co_in),
            "created_at": _ts(created[slot_idx, loc_idx]),
            "modified_at": _ts(modified[slot_idx, loc_idx]),
        })

    # -------------------------------------------------------------------------------------------
    # deals

    def _deal_frames(self, c: _Core) -> tuple[pd.DataFrame, pd.DataFrame]:
        p = _pools()
        co = self._company_arrays()
        blocks = self._blocks(c.k)
        counts = [self._block_deals(b) for b in blocks]
        D = self._uniforms(_S_DEALS, blocks, _DR.N, counts)
        nd = D.shape[1]
        deal_id = np.arange(self._deal_offset(blocks.start), self._deal_offset(blocks.start) + nd, dtype=np.int64)
        dblk = np.repeat(np.array(list(blocks)), counts)
        bstart = dblk * BLOCK
        bn = np.minimum(bstart + BLOCK, self.scale) - bstart
        low = np.where(dblk == 0, _SHOWCASE, 0)  # random deals leave the showcase people alone
        primary = bstart + low + _upick(D[_DR.primary], bn - low) - c.a  # chunk-local index
        forced = (dblk == 0) & (np.arange(nd) < _N_FORCED_DEALS)  # block 0 is first in chunk 0
        nf = int(forced.sum())
        if nf:
            primary[: len(_PAIRS)] = np.arange(len(_PAIRS)) % 4
            primary[len(_PAIRS):nf] = 0
        cid = c.cid[primary]
        has_co = cid >= 0
        cidc = np.maximum(cid, 0)

        pipe = (D[_DR.pipeline] >= 0.7).astype(np.int64)
        st = _wpick(D[_DR.stage], _cum([25, 30, 45]))  # won, lost, open
        stage_in = np.where(st == 2, _upick(D[_DR.open_stage], _PIPE_OPEN[pipe]), _PIPE_OPEN[pipe] + st)
        pair = _PIPE_OFF[pipe] + stage_in
        if nf:
            pair[: len(_PAIRS)] = np.arange(len(_PAIRS))
            pair[len(_PAIRS):nf] = _PIPE_OFF[0] + len(PIPELINES["sales"]) - 2  # sales / won
        closed, won = _PAIR_CLOSED[pair], _PAIR_WON[pair]

        pc = c.created[primary]
        dur = (D[_DR.duration] * D[_DR.duration] * 365 * _DAY).astype(np.int64)
        # closed deals are created early enough to close within the time range
        created = _between(pc, np.where(closed, np.maximum(pc, _T1 - dur), _T1), D[_DR.created])
        close_t = created + np.minimum(dur, ((_T1 - created) * D[_DR.duration]).astype(np.int64))
        future = _T1 - _T1 % _DAY + (1 + _upick(D[_DR.future], 270)) * _DAY
        close = np.where(closed, close_t - close_t % _DAY, future)
        modified = np.where(closed, _between(close_t, _T1, D[_DR.modified]), _between(created, _T1, D[_DR.modified]))
        bucket = _upick(D[_DR.bucket], len(_AMOUNT_BUCKETS))
        lo, hi = _AMOUNT_BUCKETS[bucket, 0], _AMOUNT_BUCKETS[bucket, 1]
        amount = np.floor((lo + (hi - lo) * D[_DR.amount]) / 10.0) * 10.0 * np.where(pipe == 1, 4.0, 1.0)
        cents = D[_DR.cents] < 0.2
        amount[cents] += np.floor(D[_DR.cents][cents] * 500.0) / 100.0
        has_amount = D[_DR.has_amount] >= 0.05
        if nf:  # person 0: the most recently created won deal is not the most recently closed one
            r = len(_PAIRS)
            created[r:r + 2] = [_ms("2021-03-01T10:00"), _ms("2022-01-10T09:30")]
            close[r:r + 2] = [_ms("2022-06-30"), _ms("2022-02-15")]
            modified[r:r + 2] = [_ms("2022-07-01T08:00"), _ms("2022-02-16T12:00")]
            amount[r:r + 2] = [5000.0, 1200.0]
            has_amount[:nf] = True
            created[:nf] = np.maximum(created[:nf], pc[:nf])
            modified[:nf] = np.maximum(modified[:nf], created[:nf])

        flags = {}
        for name, row, share in (("in_hubspot", _DR.in_hs, 0.8), ("in_salesforce", _DR.in_sf, 0.6),
                                 ("in_dynamics", _DR.in_dyn, 0.4)):
            f = (D[row] < share) & (~has_co | co[name][cidc])
            f[:nf] = True
            flags[name] = f
        last = p.last[c.li[primary]]
        title = np.where(has_co, co["name"][cidc], last)
        name = title + " - " + p.products[_upick(D[_DR.product], len(p.products))]
        desc = np.where(D[_DR.has_desc] < 0.6, p.sentences[_upick(D[_DR.desc], len(p.sentences))], None)
        owner = np.where(has_co, co["owner"][cidc], c.owner[primary])
        eur = has_co & _EUR[co["country"][cidc]]
        deals = pd.DataFrame({
            "deal_id": deal_id,
            "name": _s(name),
            "amount": pd.arrays.FloatingArray(amount, ~has_amount),
            "currency": _s(np.where(eur, "EUR", "USD")),
            "pipeline": _s(_PAIR_PIPE[pair]),
            "stage": _s(_PAIR_STAGE[pair]),
            "is_closed": closed,
            "is_won": won,
            "close_date": _ts(close),
            "deal_type": _s(np.where(D[_DR.deal_type] < 0.65, "newbusiness", "existingbusiness")),
            "description": _s(desc),
            "owner_id": owner,
            "company_id": _nullable_int(cid, has_co),
            "created_at": _ts(created),
            "modified_at": _ts(modified),
            **flags,
        })

        # deal contacts: the primary, plus up to two colleagues (or, without company, other people of the block)
        order = np.lexsort((c.pid, np.where(c.has_co, c.cid, np.iinfo(np.int64).max)))
        sorted_cid = np.where(c.has_co, c.cid, np.iinfo(np.int64).max)[order]
        g_start = np.searchsorted(sorted_cid, cidc, side="left")
        g_size = np.searchsorted(sorted_cid, cidc, side="right") - g_start
        n_extra = np.where(forced, 0, _wpick(D[_DR.n_extra], _cum([50, 35, 15])))
        rows_deal = [np.arange(nd)]
        rows_person = [primary]
        rows_primary = [np.ones(nd, dtype=bool)]
        for j, row in enumerate((_DR.extra1, _DR.extra2)):
            sel = np.flatnonzero(n_extra > j)
            colleague = order[g_start[sel] + _upick(D[row][sel], np.maximum(g_size[sel], 1))]
            anyone = bstart[sel] + low[sel] + _upick(D[row][sel], bn[sel] - low[sel]) - c.a
            person = np.where(has_co[sel], colleague, anyone)
            keep = ~((dblk[sel] == 0) & (c.pid[person] < _SHOWCASE))
            rows_deal.append(sel[keep])
            rows_person.append(person[keep])
            rows_primary.append(np.zeros(int(keep.sum()), dtype=bool))
        d_i = np.concatenate(rows_deal)
        p_i = np.concatenate(rows_person)
        prim = np.concatenate(rows_primary)
        srt = np.lexsort((~prim, p_i, d_i))
        d_i, p_i, prim = d_i[srt], p_i[srt], prim[srt]
        first = np.ones(len(d_i), dtype=bool)
        first[1:] = (d_i[1:] != d_i[:-1]) | (p_i[1:] != p_i[:-1])
        d_i, p_i, prim = d_i[first], p_i[first], prim[first]
        ppid = c.pid[p_i]
        S = c.slots
        dc = {"deal_id": deal_id[d_i], "person_id": ppid, "is_primary": prim}
        for name, flag, slot in (("hubspot", "in_hubspot", 0), ("salesforce", "in_salesforce", 2),
                                 ("dynamics", "in_dynamics", 5)):
            dc[f"{name}_record_id"] = _nullable_int(ppid * 8 + slot, flags[flag][d_i] & S[slot][p_i])
        return deals, pd.DataFrame(dc)

    # -------------------------------------------------------------------------------------------
    # public iteration

    def chunks(self) -> Iterator[UniverseChunk]:
        """Everything, chunk by chunk, in one pass (people ids ascending).

        A pass that runs to the end also fills the manifest cache, so ``manifest()`` after it is free.
        """
        totals: dict[str, int] = {}
        for k in range(self.n_chunks):
            c = self._core(k)
            deals, dc = self._deal_frames(c)
            chunk = UniverseChunk(k, self._people_frame(c), self._appearance_frame(c), deals, dc)
            if self._manifest is None:
                for key, v in _tally(chunk).items():
                    totals[key] = totals.get(key, 0) + v
            yield chunk
            # a consumer that lets go of a chunk frees it before the next one is generated
            del c, deals, dc, chunk
        if self._manifest is None:
            self._manifest = _summarize(self, totals)

    def people_chunks(self) -> Iterator[pd.DataFrame]:
        for k in range(self.n_chunks):
            yield self._people_frame(self._core(k))

    def appearance_chunks(self) -> Iterator[pd.DataFrame]:
        for k in range(self.n_chunks):
            yield self._appearance_frame(self._core(k))

    def deal_chunks(self) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
        for k in range(self.n_chunks):
            yield self._deal_frames(self._core(k))

    # -------------------------------------------------------------------------------------------
    # manifest

    def manifest(self) -> dict:
        """Expected counts for this (seed, scale): what each sandbox will hold. One pass, cached."""
        if self._manifest is None:
            for _ in self.chunks():
                pass
        assert self._manifest is not None
        return _copy(self._manifest)


def _copy(d):
    return {k: _copy(v) for k, v in d.items()} if isinstance(d, dict) else (list(d) if isinstance(d, list) else d)


def _tally(ch: UniverseChunk) -> dict[str, int]:
    """Counts of one chunk, summed over chunks by ``Universe.chunks``."""
    t = dict.fromkeys((
        "people", "deals", "deal_contacts", "people_without_email", "people_invalid_email",
        "hs_contacts", "hs_noemail", "hs_invalid", "hs_dup", "hs_people", "hs_deals", "hs_dc", "hs_tasks", "hs_calls",
        "sf_Lead", "sf_Contact", "sf_conv", "sf_noemail", "sf_invalid", "sf_dup", "sf_people", "sf_opp", "sf_ocr",
        "dy_contact", "dy_lead", "dy_noemail", "dy_invalid", "dy_dup", "dy_people", "dy_opp", "dy_oc", "dy_parent",
        "v_canonical", "v_case", "v_whitespace", "v_missing", "v_alternate", "in0", "in1", "in2", "in3"), 0)
    pe, ap, de, dc = ch.people, ch.appearances, ch.deals, ch.deal_contacts
    t["people"] += len(pe)
    t["deals"] += len(de)
    t["deal_contacts"] += len(dc)
    t["people_without_email"] += int(pe["email"].isna().sum())
    t["people_invalid_email"] += int((pe["email"].notna() & ~pe["email_valid"]).sum())
    crm = ap["crm"].to_numpy(dtype=object)
    kind = ap["kind"].to_numpy(dtype=object)
    noemail = ap["email"].isna().to_numpy()
    invalid = ~noemail & ~ap["email_valid"].to_numpy()
    dup = ap["is_duplicate"].to_numpy()
    pid = ap["person_id"].to_numpy()
    for key, name in (("hs", "hubspot"), ("sf", "salesforce"), ("dy", "dynamics")):
        m = crm == name
        t[f"{key}_noemail"] += int((m & noemail).sum())
        t[f"{key}_invalid"] += int((m & invalid).sum())
        t[f"{key}_dup"] += int((m & dup).sum())
        t[f"{key}_people"] += len(np.unique(pid[m]))
    t["hs_contacts"] += int((crm == "hubspot").sum())
    t["sf_Lead"] += int(((crm == "salesforce") & (kind == "Lead")).sum())
    t["sf_Contact"] += int(((crm == "salesforce") & (kind == "Contact")).sum())
    t["sf_conv"] += int(ap["converted_to_contact"].sum())
    t["dy_contact"] += int(((crm == "dynamics") & (kind == "contact")).sum())
    t["dy_lead"] += int(((crm == "dynamics") & (kind == "lead")).sum())
    for v in _VARIANTS:
        t[f"v_{v}"] += int((ap["email_variant"] == v).sum())
    people = pe["person_id"].to_numpy()
    ncrm = sum(np.isin(people, pid[crm == name]).astype(int) for name in CRMS)
    for i in range(4):
        t[f"in{i}"] += int((ncrm == i).sum())
    t["hs_deals"] += int(de["in_hubspot"].sum())
    t["sf_opp"] += int(de["in_salesforce"].sum())
    t["dy_opp"] += int(de["in_dynamics"].sum())
    t["hs_dc"] += int(dc["hubspot_record_id"].notna().sum())
    # HubSpot engagements: a task per open deal's primary contact, a logged call per closed one's
    engaged = (dc["hubspot_record_id"].notna() & dc["is_primary"]).to_numpy()
    closed = dc["deal_id"].map(pd.Series(de["is_closed"].to_numpy(), index=de["deal_id"])).to_numpy(dtype=bool)
    t["hs_tasks"] += int((engaged & ~closed).sum())
    t["hs_calls"] += int((engaged & closed).sum())
    t["sf_ocr"] += int(dc["salesforce_record_id"].notna().sum())
    t["dy_oc"] += int(dc["dynamics_record_id"].notna().sum())
    t["dy_parent"] += int((dc["dynamics_record_id"].notna() & dc["is_primary"]).sum())
    return t


def _summarize(universe: Universe, t: dict[str, int]) -> dict:
    companies = universe.companies()
    n_owners = universe.n_owners
    return {
        "seed": universe.seed,
        "scale": universe.scale,
        "time_range": [TIME_RANGE[0].isoformat(), TIME_RANGE[1].isoformat()],
        "people": t["people"],
        "people_without_email": t["people_without_email"],
        "people_invalid_email": t["people_invalid_email"],
        "people_by_number_of_crms": {str(i): t[f"in{i}"] for i in range(4)},
        "companies": len(companies),
        "companies_without_domain": int(companies["domain"].isna().sum()),
        "deals": t["deals"],
        "deal_contacts": t["deal_contacts"],
        "owners": n_owners,
        "pipelines": {k: list(v) for k, v in PIPELINES.items()},
        "email_variants": {v: t[f"v_{v}"] for v in _VARIANTS},
        "crms": {
            "hubspot": {
                "contacts": t["hs_contacts"],
                "contacts_without_email": t["hs_noemail"],
                "contacts_invalid_email": t["hs_invalid"],
                "duplicate_records": t["hs_dup"],
                "people": t["hs_people"],
                "companies": int(companies["in_hubspot"].sum()),
                "deals": t["hs_deals"],
                "deal_contacts": t["hs_dc"],
                # one engagement per deal's primary contact (OPS-4): a task if the deal is open, else a call
                "tasks": t["hs_tasks"],
                "calls": t["hs_calls"],
                "owners": n_owners,
            },
            "salesforce": {
                "Lead": t["sf_Lead"],
                "Contact": t["sf_Contact"],
                "converted_leads": t["sf_conv"],
                "records_without_email": t["sf_noemail"],
                "records_invalid_email": t["sf_invalid"],
                "duplicate_records": t["sf_dup"],
                "people": t["sf_people"],
                "Account": int(companies["in_salesforce"].sum()),
                "Opportunity": t["sf_opp"],
                "OpportunityContactRole": t["sf_ocr"],
                "User": n_owners,
            },
            "dynamics": {
                "contact": t["dy_contact"],
                "lead": t["dy_lead"],
                "records_without_email": t["dy_noemail"],
                "records_invalid_email": t["dy_invalid"],
                "duplicate_records": t["dy_dup"],
                "people": t["dy_people"],
                "account": int(companies["in_dynamics"].sum()),
                "opportunity": t["dy_opp"],
                "opportunity_contacts": t["dy_oc"],
                "opportunity_parentcontact": t["dy_parent"],
                "systemuser": n_owners,
            },
        },
    }
