"""Per-language sentence grammars for the speech clips, with English glosses.

A sentence is subject + verb phrase + place + time, each slot filled from a small table whose
rows are aligned across languages, so the English gloss of any sentence is the same choice of
rows in the English table. A sentence id ``lang:s-v-p-t`` names the rows; the split of a
sentence is a hash of its id, so no sentence is shared between splits.
"""

import functools
import itertools

from audiolm_pt.data.demo_corpus.splits import split_of_key

SLOTS = ("subject", "verb", "place", "time")

# Rows are aligned across languages: row k of a slot means the same thing in every language.
# "order" places the slots; German and Dutch put time before place, as their speakers do.
GRAMMARS = {
    "en": {
        "name": "English",
        "espeak": "en",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "the old man",
            "my sister",
            "the doctor",
            "our neighbour",
            "the little girl",
            "my grandfather",
            "the baker",
            "his friend",
        ],
        "verb": [
            "reads a book",
            "drinks a coffee",
            "buys fresh bread",
            "writes a letter",
            "cooks soup",
            "plays the guitar",
            "paints a picture",
            "waits for the bus",
            "opens the window",
            "eats an apple",
        ],
        "place": [
            "in the park",
            "in the kitchen",
            "at the station",
            "in the garden",
            "at school",
            "by the river",
        ],
        "time": [
            "in the morning",
            "every evening",
            "today",
            "on Sunday",
            "after lunch",
            "at night",
        ],
    },
    "de": {
        "name": "German",
        "espeak": "de",
        "order": ("subject", "verb", "time", "place"),
        "subject": [
            "der alte Mann",
            "meine Schwester",
            "der Arzt",
            "unser Nachbar",
            "das kleine Mädchen",
            "mein Großvater",
            "der Bäcker",
            "sein Freund",
        ],
        "verb": [
            "liest ein Buch",
            "trinkt einen Kaffee",
            "kauft frisches Brot",
            "schreibt einen Brief",
            "kocht Suppe",
            "spielt Gitarre",
            "malt ein Bild",
            "wartet auf den Bus",
            "öffnet das Fenster",
            "isst einen Apfel",
        ],
        "place": [
            "im Park",
            "in der Küche",
            "am Bahnhof",
            "im Garten",
            "in der Schule",
            "am Fluss",
        ],
        "time": [
            "am Morgen",
            "jeden Abend",
            "heute",
            "am Sonntag",
            "nach dem Mittagessen",
            "in der Nacht",
        ],
    },
    "fr": {
        "name": "French",
        "espeak": "fr",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "le vieil homme",
            "ma sœur",
            "le médecin",
            "notre voisin",
            "la petite fille",
            "mon grand-père",
            "le boulanger",
            "son ami",
        ],
        "verb": [
            "lit un livre",
            "boit un café",
            "achète du pain frais",
            "écrit une lettre",
            "prépare une soupe",
            "joue de la guitare",
            "peint un tableau",
            "attend le bus",
            "ouvre la fenêtre",
            "mange une pomme",
        ],
        "place": [
            "dans le parc",
            "dans la cuisine",
            "à la gare",
            "dans le jardin",
            "à l'école",
            "au bord de la rivière",
        ],
        "time": [
            "le matin",
            "chaque soir",
            "aujourd'hui",
            "le dimanche",
            "après le déjeuner",
            "la nuit",
        ],
    },
    "es": {
        "name": "Spanish",
        "espeak": "es",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "el anciano",
            "mi hermana",
            "el médico",
            "nuestro vecino",
            "la niña pequeña",
            "mi abuelo",
            "el panadero",
            "su amigo",
        ],
        "verb": [
            "lee un libro",
            "bebe un café",
            "compra pan fresco",
            "escribe una carta",
            "cocina una sopa",
            "toca la guitarra",
            "pinta un cuadro",
            "espera el autobús",
            "abre la ventana",
            "come una manzana",
        ],
        "place": [
            "en el parque",
            "en la cocina",
            "en la estación",
            "en el jardín",
            "en la escuela",
            "junto al río",
        ],
        "time": [
            "por la mañana",
            "todas las tardes",
            "hoy",
            "el domingo",
            "después del almuerzo",
            "por la noche",
        ],
    },
    "it": {
        "name": "Italian",
        "espeak": "it",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "il vecchio",
            "mia sorella",
            "il medico",
            "il nostro vicino",
            "la bambina",
            "mio nonno",
            "il fornaio",
            "il suo amico",
        ],
        "verb": [
            "legge un libro",
            "beve un caffè",
            "compra pane fresco",
            "scrive una lettera",
            "cucina una zuppa",
            "suona la chitarra",
            "dipinge un quadro",
            "aspetta l'autobus",
            "apre la finestra",
            "mangia una mela",
        ],
        "place": [
            "nel parco",
            "in cucina",
            "alla stazione",
            "in giardino",
            "a scuola",
            "vicino al fiume",
        ],
        "time": ["la mattina", "ogni sera", "oggi", "la domenica", "dopo pranzo", "di notte"],
    },
    "pt": {
        "name": "Portuguese",
        "espeak": "pt",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "o velho",
            "a minha irmã",
            "o médico",
            "o nosso vizinho",
            "a menina",
            "o meu avô",
            "o padeiro",
            "o seu amigo",
        ],
        "verb": [
            "lê um livro",
            "bebe um café",
            "compra pão fresco",
            "escreve uma carta",
            "cozinha uma sopa",
            "toca guitarra",
            "pinta um quadro",
            "espera pelo autocarro",
            "abre a janela",
            "come uma maçã",
        ],
        "place": [
            "no parque",
            "na cozinha",
            "na estação",
            "no jardim",
            "na escola",
            "junto ao rio",
        ],
        "time": [
            "de manhã",
            "todas as noites",
            "hoje",
            "no domingo",
            "depois do almoço",
            "à noite",
        ],
    },
    "nl": {
        "name": "Dutch",
        "espeak": "nl",
        "order": ("subject", "verb", "time", "place"),
        "subject": [
            "de oude man",
            "mijn zus",
            "de dokter",
            "onze buurman",
            "het kleine meisje",
            "mijn opa",
            "de bakker",
            "zijn vriend",
        ],
        "verb": [
            "leest een boek",
            "drinkt een kop koffie",
            "koopt vers brood",
            "schrijft een brief",
            "kookt soep",
            "speelt gitaar",
            "schildert een schilderij",
            "wacht op de bus",
            "opent het raam",
            "eet een appel",
        ],
        "place": [
            "in het park",
            "in de keuken",
            "op het station",
            "in de tuin",
            "op school",
            "bij de rivier",
        ],
        "time": ["'s ochtends", "elke avond", "vandaag", "op zondag", "na de lunch", "'s nachts"],
    },
    "sv": {
        "name": "Swedish",
        "espeak": "sv",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "den gamle mannen",
            "min syster",
            "läkaren",
            "vår granne",
            "den lilla flickan",
            "min farfar",
            "bagaren",
            "hans vän",
        ],
        "verb": [
            "läser en bok",
            "dricker en kopp kaffe",
            "köper färskt bröd",
            "skriver ett brev",
            "lagar soppa",
            "spelar gitarr",
            "målar en tavla",
            "väntar på bussen",
            "öppnar fönstret",
            "äter ett äpple",
        ],
        "place": ["i parken", "i köket", "på stationen", "i trädgården", "i skolan", "vid floden"],
        "time": ["på morgonen", "varje kväll", "i dag", "på söndag", "efter lunchen", "på natten"],
    },
    "pl": {
        "name": "Polish",
        "espeak": "pl",
        "order": ("subject", "verb", "place", "time"),
        "subject": [
            "stary człowiek",
            "moja siostra",
            "lekarz",
            "nasz sąsiad",
            "mała dziewczynka",
            "mój dziadek",
            "piekarz",
            "jego przyjaciel",
        ],
        "verb": [
            "czyta książkę",
            "pije kawę",
            "kupuje świeży chleb",
            "pisze list",
            "gotuje zupę",
            "gra na gitarze",
            "maluje obraz",
            "czeka na autobus",
            "otwiera okno",
            "je jabłko",
        ],
        "place": ["w parku", "w kuchni", "na dworcu", "w ogrodzie", "w szkole", "nad rzeką"],
        "time": ["rano", "każdego wieczoru", "dzisiaj", "w niedzielę", "po obiedzie", "w nocy"],
    },
}

LANGUAGES = tuple(GRAMMARS)


def _render(lang: str, rows: tuple[int, ...]) -> str:
    grammar = GRAMMARS[lang]
    chosen = dict(zip(SLOTS, rows, strict=True))
    text = " ".join(grammar[slot][chosen[slot]] for slot in grammar["order"])
    return text[0].upper() + text[1:] + "."


def sentence(sentence_id: str) -> tuple[str, str]:
    """(text in its language, English gloss) of a sentence id ``lang:s-v-p-t``."""
    lang, rows_text = sentence_id.split(":")
    rows = tuple(int(r) for r in rows_text.split("-"))
    return _render(lang, rows), _render("en", rows)


@functools.cache
def sentence_pool(lang: str, split: str, fractions: tuple[float, float, float]) -> tuple[str, ...]:
    """Every sentence id of a language that belongs to a split."""
    grammar = GRAMMARS[lang]
    ranges = [range(len(grammar[slot])) for slot in SLOTS]
    ids = (f"{lang}:" + "-".join(map(str, rows)) for rows in itertools.product(*ranges))
    return tuple(i for i in ids if split_of_key("sentence:" + i, fractions) == split)
