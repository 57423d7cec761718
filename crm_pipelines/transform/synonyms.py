"""Free-text country and state names people type into CRMs that pycountry does not know (CON-10).

pycountry carries ISO's English names and codes only; CRM data holds native names ("Deutschland",
"Polska", "Türkiye"), other languages' names ("Vereinigte Staaten", "Allemagne"), abbreviations ("USA",
"U.S.", "UK", "GER") and constituent countries ("England"). Keys are matched case-, accent- and
punctuation-insensitively, so "U.S.A." and "usa" need one entry. Extend this table as data shows more.
"""

from __future__ import annotations

COUNTRY_SYNONYMS: dict[str, str] = {
    # United States
    "USA": "US", "U.S.": "US", "U.S.A.": "US", "United States of America": "US", "America": "US",
    "Vereinigte Staaten": "US", "Vereinigte Staaten von Amerika": "US", "Etats-Unis": "US", "Estados Unidos": "US",
    "Stany Zjednoczone": "US", "Amerika Birlesik Devletleri": "US",
    # Germany
    "Deutschland": "DE", "GER": "DE", "Allemagne": "DE", "Alemania": "DE", "Niemcy": "DE", "Almanya": "DE",
    "BRD": "DE",
    # United Kingdom
    "UK": "GB", "U.K.": "GB", "Great Britain": "GB", "Britain": "GB", "England": "GB", "Scotland": "GB",
    "Wales": "GB", "Northern Ireland": "GB", "Grossbritannien": "GB", "Vereinigtes Konigreich": "GB",
    "Royaume-Uni": "GB", "Reino Unido": "GB",
    # France, Spain, Poland, Turkey, Ireland, Canada, ...
    "Frankreich": "FR", "Francia": "FR", "Francja": "FR",
    "Espana": "ES", "Spanien": "ES", "Espagne": "ES", "Hiszpania": "ES",
    "Polska": "PL", "Polen": "PL", "Pologne": "PL", "Polonia": "PL",
    "Turkey": "TR", "Turkiye": "TR", "Turkei": "TR", "Turquie": "TR", "Turquia": "TR",
    "Eire": "IE", "Republic of Ireland": "IE", "Irland": "IE", "Irlande": "IE",
    "Kanada": "CA",
    "Osterreich": "AT", "Schweiz": "CH", "Suisse": "CH", "Svizzera": "CH", "Nederland": "NL", "Holland": "NL",
    "Italien": "IT", "Italia": "IT", "Belgien": "BE", "Belgique": "BE", "Danemark": "DK", "Danmark": "DK",
    "Schweden": "SE", "Sverige": "SE", "Norge": "NO", "Suomi": "FI", "Portugal": "PT", "Brasil": "BR",
    "Mexiko": "MX", "Russia": "RU", "South Korea": "KR", "Korea": "KR", "Czech Republic": "CZ",
    "Tschechien": "CZ", "UAE": "AE",
}

# (country, text) -> ISO 3166-2: abbreviations and names ISO lists in another language or form
SUBDIVISION_SYNONYMS: dict[tuple[str, str], str] = {
    ("US", "Calif."): "US-CA", ("US", "Calif"): "US-CA", ("US", "Cal"): "US-CA", ("US", "Mass."): "US-MA",
    ("US", "N.Y."): "US-NY", ("US", "Tex."): "US-TX", ("US", "Fla."): "US-FL", ("US", "Wash."): "US-WA",
    ("DE", "Bavaria"): "DE-BY", ("DE", "NRW"): "DE-NW", ("DE", "North Rhine-Westphalia"): "DE-NW",
    ("DE", "Hesse"): "DE-HE", ("DE", "Lower Saxony"): "DE-NI",
    ("FR", "IDF"): "FR-IDF", ("FR", "Ile de France"): "FR-IDF", ("FR", "Brittany"): "FR-BRE",
    ("ES", "Catalonia"): "ES-CT", ("ES", "Cataluna"): "ES-CT", ("ES", "Catalunya"): "ES-CT",
    ("ES", "Andalusia"): "ES-AN", ("ES", "Andalucia"): "ES-AN", ("ES", "Madrid"): "ES-MD",
    ("PL", "Masovia"): "PL-MZ", ("PL", "Lesser Poland"): "PL-MA", ("PL", "Silesia"): "PL-SL",
    ("TR", "Istanbul"): "TR-34", ("TR", "Ankara"): "TR-06", ("TR", "Izmir"): "TR-35",
    ("IE", "Dublin"): "IE-D", ("IE", "Co. Dublin"): "IE-D", ("IE", "County Dublin"): "IE-D", ("IE", "Cork"): "IE-CO",
    ("IE", "Galway"): "IE-G",
    ("GB", "England"): "GB-ENG", ("GB", "Scotland"): "GB-SCT", ("GB", "Wales"): "GB-WLS",
    ("CA", "Quebec"): "CA-QC",
}
