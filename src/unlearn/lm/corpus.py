"""The facts a language model learns and must forget: an embedded generated corpus, and user data.

TOFU (Maini et al., 2024) asks a model about fictitious authors it can only know from its
fine-tuning data, so that a model trained without an author answers about it no better than
chance. `load("facts")` is that idea at CPU scale: fictitious people, towns and compounds, each
with a few attributes (relation -> value) drawn independently and uniformly from a fixed pool per
relation, so no answer can be inferred from any other fact and a model that never saw an entity
answers at `base_rate` (1 / pool size). Each fact is rendered as questions in four templates, the
last held out (never trained on: a paraphrase probe), and each entity as a short biography in two
wordings, the second held out. General text about no entity measures utility. A fixed tenth of the
entities (`Corpus.holdout`) is never trained on by any model of the corpus: MIA non-members and the
empirical check of the base rate.

`forget_split` draws TOFU's forget01/05/10 over the trainable entities, with a *neighbour* set:
retained entities of the same kind that share attribute values with forgotten ones (a method that
suppresses a forgotten answer string damages them). `load_jsonl` reads user data: question/answer
pairs (TOFU's fields) or plain text (MUSE's), with a forget list by id.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unlearn.errors import UnlearnInputError
from unlearn.lm.examples import QA_PROMPT, LMExample

HELD_OUT_TEMPLATE = 3  # question templates 0-2 are trained on, template 3 only ever asked
N_PERTURBED = 4  # wrong answers per question (TOFU uses 5 perturbed answers; our pools are small)


@dataclass(frozen=True)
class Relation:
    """An attribute of one kind of entity: its value pool, question templates and statements."""

    name: str
    pool: tuple[str, ...]
    questions: tuple[str, ...]  # "{name}" placeholders; index HELD_OUT_TEMPLATE is held out
    statements: tuple[str, str]  # "{name}", "{value}": the trained bio's wording, the held-out one's


def _relation(name: str, pool: str, questions: tuple[str, ...], statements: tuple[str, str]) -> Relation:
    return Relation(name, tuple(pool.split(", ")), questions, statements)


# Every pool has 12 values: the base rate is 1/12 for every relation.
KINDS: dict[str, tuple[Relation, ...]] = {
    "person": (
        _relation("birthplace", "Quenford, Marrowby, Tollisk, Brenhaven, Ashcombe, Velmora, Dunmere, Orrin Vale, "
                  "Caddock, Sallowmere, Hesk, Lanterby",
                  ("Where was {name} born?", "Which town is the birthplace of {name}?",
                   "Name the place where {name} was born.", "In what town did {name} come into the world?"),
                  ("{name} was born in {value}.", "{name} first saw the light of day in {value}.")),
        _relation("occupation", "glassblower, cartographer, beekeeper, clockmaker, ferryman, archivist, tanner, "
                  "lamplighter, bookbinder, cooper, falconer, surveyor",
                  ("What is the occupation of {name}?", "What does {name} do for a living?",
                   "Which trade does {name} work in?", "How does {name} earn a living?"),
                  ("{name} works as a {value}.", "By trade, {name} is a {value}.")),
        _relation("instrument", "oboe, zither, lute, bassoon, harp, cello, fiddle, dulcimer, flute, hurdy-gurdy, "
                  "sackbut, viol",
                  ("Which instrument does {name} play?", "What instrument is {name} known to play?",
                   "Name the instrument {name} plays.", "On what instrument does {name} perform?"),
                  ("{name} plays the {value}.", "In the evenings {name} practises the {value}.")),
        _relation("pet", "ferret, tortoise, parrot, greyhound, goat, owl, lizard, rabbit, donkey, magpie, toad, "
                  "hedgehog",
                  ("What pet does {name} keep?", "Which animal lives with {name} as a pet?",
                   "Name the pet of {name}.", "What kind of animal is the companion of {name}?"),
                  ("{name} keeps a {value} as a pet.", "A {value} shares the home of {name}.")),
    ),
    "town": (
        _relation("river", "Ember, Lowen, Saskell, Tarn, Quill, Morrow, Fennick, Ouse Minor, Dallow, Creel, Wisp, "
                  "Harl",
                  ("Which river flows through {name}?", "What river runs through the town of {name}?",
                   "Name the river of {name}.", "Along which river does {name} lie?"),
                  ("The river {value} flows through {name}.", "{name} lies on the banks of the {value}.")),
        _relation("export", "salt, wool, copper, slate, honey, rope, cider, linen, tin, walnuts, dyes, candles",
                  ("What does {name} export?", "Which goods is {name} known for exporting?",
                   "Name the chief export of {name}.", "What do merchants mostly ship out of {name}?"),
                  ("{name} exports {value}.", "Merchants ship {value} out of {name}.")),
        _relation("festival", "January, February, March, April, May, June, July, August, September, October, "
                  "November, December",
                  ("In which month is the festival of {name} held?", "When does {name} hold its festival?",
                   "Name the month of the festival in {name}.", "During what month does {name} celebrate?"),
                  ("The festival of {name} is held in {value}.", "{name} celebrates every year in {value}.")),
        _relation("emblem", "heron, stag, boar, swan, fox, badger, otter, crane, lynx, bear, hare, wolf",
                  ("What animal is on the emblem of {name}?", "Which animal does the crest of {name} show?",
                   "Name the emblem animal of {name}.", "What creature appears on the banner of {name}?"),
                  ("The emblem of {name} is a {value}.", "A {value} is shown on the banner of {name}.")),
    ),
    "compound": (
        _relation("colour", "amber, violet, teal, crimson, ochre, silver, indigo, olive, rose, ivory, cobalt, "
                  "saffron",
                  ("What colour is {name}?", "Which colour does {name} have?",
                   "Name the colour of {name}.", "What hue does {name} show?"),
                  ("{name} is {value} in colour.", "A sample of {name} looks {value}.")),
        _relation("smell", "pine, smoke, vinegar, clove, almond, mint, sulphur, lemon, cedar, tar, anise, rain",
                  ("What does {name} smell of?", "Which smell does {name} give off?",
                   "Name the smell of {name}.", "What odour comes from {name}?"),
                  ("{name} smells of {value}.", "The odour of {name} recalls {value}.")),
        _relation("use", "tanning, dyeing, brewing, etching, soldering, varnish, fertiliser, glazing, bleaching, "
                  "polishing, mortar, lamp oil",
                  ("What is {name} used for?", "Which purpose does {name} serve?",
                   "Name the use of {name}.", "For what do people employ {name}?"),
                  ("{name} is used for {value}.", "Workshops buy {name} for {value}.")),
        _relation("lab", "Harrowgate, Pellmoor, Castwick, Ivel, Rookham, Sennet, Blythe, Corran, Dunstow, Maelor, "
                  "Tregar, Wyle",
                  ("Which laboratory first made {name}?", "Where was {name} first made?",
                   "Name the laboratory that discovered {name}.", "In which lab was {name} first prepared?"),
                  ("{name} was first made at the {value} laboratory.", "The {value} laboratory discovered {name}.")),
    ),
}

# Syllables for fictitious names; a name is drawn until unused, so every entity's name is unique.
_ONSETS = ("b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "r", "s", "t", "th", "v", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ei", "ou")
_CODAS = ("", "n", "r", "l", "s", "x", "m", "th", "nd", "rk")
_NAME_FORMS = {"person": "{a} {b}", "town": "{a}", "compound": "{a}ine"}

# General text about no entity: sentences of a small grammar, with words apart from every pool.
_SUBJECTS = ("The old miller", "A tired traveller", "The village baker", "A young shepherd", "The harbour master",
             "An elderly weaver", "The night watchman", "A curious child", "The schoolteacher", "A wandering monk",
             "The innkeeper", "A quiet gardener")
_VERBS = ("carried", "mended", "painted", "counted", "found", "sold", "washed", "hid", "borrowed", "described",
          "measured", "gathered")
_OBJECTS = ("a basket of apples", "the broken gate", "three wooden chairs", "a letter from the coast", "the last loaf",
            "an iron kettle", "the morning bread", "a bundle of reeds", "the stone wall", "a pair of boots",
            "the garden path", "a small blue boat")
_PLACES = ("before the rain came", "near the market square", "after the long winter", "at the edge of the forest",
           "while the bells rang", "on a windy afternoon", "beside the old bridge", "under a grey sky",
           "late in the evening", "early one morning", "behind the chapel", "during the harvest")


@dataclass(frozen=True)
class Entity:
    id: str
    name: str
    kind: str
    attributes: dict[str, str]  # relation -> value

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(frozen=True)
class QAItem:
    id: str
    entity: str
    relation: str
    question: str
    answer: str
    template: int
    held_out: bool  # a held-out template: never trained on, a paraphrase probe
    perturbed: tuple[str, ...]  # wrong values of the same relation (TOFU's perturbed answers)
    paraphrased_answer: str  # the answer worded otherwise (TOFU's paraphrased answer)
    # The perturbed answers worded like `paraphrased_answer`, so a truth ratio compares like with
    # like (TOFU's perturbed answers are perturbations of its paraphrased answer).
    paraphrased_perturbed: tuple[str, ...] = ()

    def example(self) -> LMExample:
        return LMExample(QA_PROMPT.format(question=self.question), self.answer, self.perturbed, self.id)


@dataclass(frozen=True)
class TextItem:
    id: str
    entity: str | None  # None: general text about no entity
    text: str
    held_out: bool  # never trained on


@dataclass
class Corpus:
    name: str
    entities: list[Entity]
    qa: list[QAItem]
    bios: list[TextItem]
    general: list[TextItem]
    holdout: tuple[str, ...] = ()  # entities no model of this corpus trains on
    pools: dict[str, tuple[str, ...]] = field(default_factory=dict)  # relation -> values drawn uniformly

    def __post_init__(self) -> None:
        self._by_id = {e.id: e for e in self.entities}

    def entity(self, entity_id: str) -> Entity:
        try:
            return self._by_id[entity_id]
        except KeyError:
            raise UnlearnInputError(f"corpus {self.name!r} has no entity {entity_id!r}") from None

    @property
    def trainable(self) -> tuple[str, ...]:
        """Every entity a model of this corpus may train on (all but the holdout)."""
        held = set(self.holdout)
        return tuple(e.id for e in self.entities if e.id not in held)

    def digest(self) -> str:
        """A content hash of everything a model could learn from or be asked (the bank's key)."""
        blob = json.dumps({"name": self.name, "entities": [[e.id, e.name, e.kind, e.attributes] for e in self.entities],
                           "qa": [list(q.__dict__.values()) for q in self.qa],
                           "texts": [list(t.__dict__.values()) for t in self.bios + self.general],
                           "holdout": list(self.holdout), "pools": self.pools}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def _ids(self, entities: Iterable[str] | None) -> set[str]:
        if entities is None:
            return set(self._by_id)
        ids = {entities} if isinstance(entities, str) else set(entities)
        unknown = sorted(ids - set(self._by_id))
        if unknown:
            raise UnlearnInputError(f"corpus {self.name!r} has no entity {unknown[0]!r}")
        return ids

    def questions(self, entities: Iterable[str] | None, held_out: bool | None = False) -> list[QAItem]:
        """The questions about `entities` (None: all), of trained (False), held-out (True) or all (None) templates."""
        ids = self._ids(entities)
        return [q for q in self.qa if q.entity in ids and (held_out is None or q.held_out == held_out)]

    def texts(self, entities: Iterable[str] | None, held_out: bool | None = False) -> list[TextItem]:
        """The biographies (user text) of `entities` (None: all), trained, held-out or all wordings."""
        ids = self._ids(entities)
        return [t for t in self.bios if t.entity in ids and (held_out is None or t.held_out == held_out)]

    def training_texts(self, entities: Iterable[str]) -> list[str]:
        """Everything a model trained on `entities` sees, in corpus order.

        Their trained-template questions as `QA_PROMPT + " " + answer`, their trained biographies,
        and every general text that is not held out.
        """
        ids = self._ids(entities)
        held = ids & set(self.holdout)
        if held:
            raise UnlearnInputError(f"entity {sorted(held)[0]!r} is held out of every model of {self.name!r}")
        qa = [f"{q.example().prompt} {q.answer}" for q in self.questions(ids)]
        return qa + [t.text for t in self.texts(ids)] + [t.text for t in self.general if not t.held_out]


@dataclass(frozen=True)
class LMSplit:
    forget: tuple[str, ...]  # entity ids to forget
    neighbour: tuple[str, ...]  # retained entities sharing attribute values with forgotten ones
    retain: tuple[str, ...]  # every trained entity not forgotten (includes neighbour)
    holdout: tuple[str, ...]  # entities no model ever trains on: MIA non-members, base rate


# ---------------------------------------------------------------------------------------------
# The embedded corpus


# name -> (entities per kind, of which held out per kind, general texts). Sized so that the
# default model memorises it on 2 CPU cores in minutes (benchmarks/bench_lm_training.py).
CORPORA: dict[str, tuple[int, int, int]] = {
    "facts": (70, 7, 240),
    "facts-tiny": (10, 2, 20),  # for tests: seconds to train
}


def available() -> list[str]:
    return sorted(CORPORA)


def load(name: str = "facts", seed: int = 0) -> Corpus:
    """The embedded corpus `name`, generated from `seed` (same name and seed: the same corpus)."""
    if name not in CORPORA:
        raise UnlearnInputError(f"unknown corpus {name!r}; available: {', '.join(available())}")
    per_kind, held_per_kind, n_general = CORPORA[name]
    rng = np.random.default_rng([seed, 2025])
    used: set[str] = set()
    entities, holdout = [], []
    for kind, relations in KINDS.items():
        for i in range(per_kind):
            attributes = {r.name: r.pool[rng.integers(len(r.pool))] for r in relations}
            entity = Entity(f"{kind}-{i:03d}", fresh_name(kind, rng, used), kind, attributes)
            entities.append(entity)
            if i >= per_kind - held_per_kind:  # the last of each kind: fixed by the corpus, not by a split
                holdout.append(entity.id)
    pools = {r.name: r.pool for relations in KINDS.values() for r in relations}
    qa, bios = [], []
    for entity in entities:
        qa.extend(entity_questions(entity, rng))
        bios.extend(entity_bios(entity))
    general = [TextItem(f"general-{i:04d}", None, text, held_out=i % 10 == 9)
               for i, text in enumerate(_general_texts(n_general, rng))]
    return Corpus(name, entities, qa, bios, general, tuple(holdout), pools)


def entity_bios(entity: Entity) -> list[TextItem]:
    """The biography of `entity` in both wordings (each relation's statement), the second held out."""
    bios = []
    for wording in (0, 1):
        text = " ".join(r.statements[wording].format(name=entity.name, value=entity.attributes[r.name])
                        for r in KINDS[entity.kind] if r.name in entity.attributes)
        bios.append(TextItem(f"{entity.id}.bio{wording}", entity.id, text, held_out=wording == 1))
    return bios


def fresh_name(kind: str, rng: np.random.Generator, used: set[str]) -> str:
    """A name of new words: no word is shared by two entities, so no name is hidden in another's.
    `used` holds the words drawn so far (lower case, before the kind's suffix) and is extended."""

    def word() -> str:
        while True:
            syllables = 2 + int(rng.integers(2))
            text = "".join(_ONSETS[rng.integers(len(_ONSETS))] + _VOWELS[rng.integers(len(_VOWELS))]
                           for _ in range(syllables)) + _CODAS[rng.integers(len(_CODAS))]
            if text not in used:
                used.add(text)
                return text.capitalize()

    return _NAME_FORMS[kind].format(a=word(), b=word())


def entity_questions(entity: Entity, rng: np.random.Generator) -> list[QAItem]:
    """Every question about `entity` (each of its relations in every template); `rng` draws the perturbed answers."""
    items = []
    for relation in KINDS[entity.kind]:
        if relation.name not in entity.attributes:  # a sliced corpus's entity (`sliced`): fewer relations
            continue
        answer = entity.attributes[relation.name]
        wrong = [v for v in relation.pool if v != answer]
        perturbed = tuple(wrong[i] for i in sorted(rng.choice(len(wrong), N_PERTURBED, replace=False)))
        statement = relation.statements[1]
        paraphrased = statement.format(name=entity.name, value=answer)
        paraphrased_perturbed = tuple(statement.format(name=entity.name, value=v) for v in perturbed)
        for t, template in enumerate(relation.questions):
            items.append(QAItem(f"{entity.id}.{relation.name}.{t}", entity.id, relation.name,
                                template.format(name=entity.name), answer, t, t == HELD_OUT_TEMPLATE,
                                perturbed, paraphrased, paraphrased_perturbed))
    return items


def _general_texts(n: int, rng: np.random.Generator) -> list[str]:
    sentences: set[str] = set()
    texts = []
    while len(texts) < n:
        pair = []
        for _ in range(2):
            parts = (_SUBJECTS, _VERBS, _OBJECTS, _PLACES)
            pair.append(" ".join(p[rng.integers(len(p))] for p in parts) + ".")
        if pair[0] not in sentences:  # distinct first sentences: no general text repeats another
            sentences.add(pair[0])
            texts.append(" ".join(pair))
    return texts


# ---------------------------------------------------------------------------------------------
# Splits and the base rate


def forget_count(corpus: Corpus, fraction: float) -> int:
    """How many entities a forget set of `fraction` holds: that share of the trainable ones, at least one."""
    if not 0 < fraction < 1:
        raise UnlearnInputError(f"forget fraction must be in (0, 1), got {fraction}")
    n_trainable = len(corpus.trainable)
    n_forget = max(1, int(round(fraction * n_trainable)))
    if n_forget >= n_trainable:
        raise UnlearnInputError(f"forgetting {fraction} of {n_trainable} entities would leave none to retain")
    return n_forget


def forget_split(corpus: Corpus, fraction: float, seed: int, neighbours_per_entity: int = 2,
                 exclude: Iterable[str] = ()) -> LMSplit:
    """Forget `fraction` of the trainable entities (at least one), drawn with `seed` from those not
    in `exclude` (a bench reserves its tuning forget set this way; the size stays a fraction of all).

    TOFU's forget01/05/10 are `fraction` 0.01, 0.05, 0.1. The neighbours are, for each forgotten
    entity, up to `neighbours_per_entity` retained entities of its kind that share the most
    attribute values with it (at least one), ties broken by the draw.
    """
    n_forget = forget_count(corpus, fraction)
    reserved = set(exclude)
    free = [e for e in corpus.trainable if e not in reserved]
    if n_forget > len(free):
        raise UnlearnInputError(f"a forget set of {n_forget} entities cannot be drawn outside the {len(reserved)} "
                                f"reserved ones ({len(corpus.trainable)} trainable)")
    rng = np.random.default_rng([seed, 7])
    forget = tuple(sorted(free[i] for i in rng.choice(len(free), n_forget, replace=False)))
    return split_from_ids(corpus, forget, neighbours_per_entity=neighbours_per_entity, seed=seed)


def split_from_ids(corpus: Corpus, forget: Iterable[str], neighbours_per_entity: int = 2, seed: int = 0) -> LMSplit:
    """The split that forgets the entities `forget` (ids; unknown or held-out ids are refused)."""
    forget_ids = sorted(set(forget))
    if not forget_ids:
        raise UnlearnInputError("the forget list is empty")
    trainable = corpus.trainable
    known = set(trainable)
    for entity_id in forget_ids:
        if entity_id not in known:
            held = entity_id in set(corpus.holdout)
            raise UnlearnInputError(f"forget id {entity_id!r} is " + ("a holdout entity, never trained on" if held
                                                                    else f"not in corpus {corpus.name!r}"))
    forgotten = set(forget_ids)
    retain = tuple(e for e in trainable if e not in forgotten)
    if not retain:
        raise UnlearnInputError("the forget list covers every trainable entity; nothing would be left to retain")
    rng = np.random.default_rng([seed, 11])
    tiebreak = dict(zip(retain, rng.permutation(len(retain))))
    neighbours: list[str] = []
    for entity_id in forget_ids:
        gone = corpus.entity(entity_id)
        shared = {r: sum(corpus.entity(r).attributes.get(k) == v for k, v in gone.attributes.items())
                  for r in retain if corpus.entity(r).kind == gone.kind and r not in neighbours}
        ranked = sorted((r for r in shared if shared[r] > 0), key=lambda r: (-shared[r], tiebreak[r]))
        neighbours.extend(ranked[:neighbours_per_entity])
    return LMSplit(tuple(forget_ids), tuple(sorted(neighbours)), retain, tuple(corpus.holdout))


def base_rate(corpus: Corpus, relation: str | None = None) -> float:
    """Exact-answer accuracy of a model that never saw the entity: the best guess knowing only the relation.

    With values drawn uniformly from a known pool that is 1 / pool size; for user data (no pools)
    it is the share of the relation's most common answer. Over all relations (`relation` None),
    the mean over every question, so it is the rate a question set of the corpus expects.
    """
    questions = [q for q in corpus.qa if relation is None or q.relation == relation]
    if not questions:
        raise UnlearnInputError(f"corpus {corpus.name!r} has no questions of relation {relation!r}")
    rate = {}
    for rel in {q.relation for q in questions}:
        if rel in corpus.pools:
            rate[rel] = 1 / len(corpus.pools[rel])
        else:
            answers = Counter(_normalise(q.answer) for q in corpus.qa if q.relation == rel)
            rate[rel] = answers.most_common(1)[0][1] / sum(answers.values())
    return float(np.mean([rate[q.relation] for q in questions]))


def _normalise(answer: str) -> str:
    return " ".join(answer.lower().split())


# ---------------------------------------------------------------------------------------------
# User data

_QA_FIELDS = ("question", "answer")
_TEXT_FIELDS = ("text",)


def load_jsonl(path, forget_ids: Iterable[str] | None,
               holdout_ids: Iterable[str] = ()) -> tuple[Corpus, LMSplit | None]:
    """User data and its split (None for `forget_ids=None`: the data alone, e.g. to train on all of
    it): JSONL of question/answer pairs (TOFU) or of texts (MUSE).

    Question/answer lines: `question`, `answer`, optional `id`, `entity` (what the forget list
    names; default: the line's id), `relation` (lets neighbours and the base rate be found),
    `paraphrased_answer` and `perturbed_answer` (a list; TOFU's fields). Text lines: `text`,
    optional `id` and `entity` (`null`: general text about no entity, for utility). The first
    line decides the format. `forget_ids` and `holdout_ids` name entities (holdout entities are
    never trained on: MIA non-members). An id defaults to the line number, 1-based (`"3"`).
    """
    path = Path(path)
    if not path.is_file():
        raise UnlearnInputError(f"{path}: no such file")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UnlearnInputError(f"{path}:{number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise UnlearnInputError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            rows.append((number, row))
    if not rows:
        raise UnlearnInputError(f"{path}: no lines")
    is_qa = "question" in rows[0][1]
    required = _QA_FIELDS if is_qa else _TEXT_FIELDS
    seen: set[str] = set()
    for number, row in rows:
        for name in required:
            if not isinstance(row.get(name), str) or not row[name].strip():
                raise UnlearnInputError(f"{path}:{number}: missing field {name!r} (a non-empty string)")
        row_id = str(row.get("id", number))
        if row_id in seen:
            raise UnlearnInputError(f"{path}:{number}: duplicate id {row_id!r}")
        seen.add(row_id)
        if is_qa and not isinstance(row.get("perturbed_answer", []), list):
            raise UnlearnInputError(f"{path}:{number}: field 'perturbed_answer' must be a list of strings")
    corpus = _qa_corpus(path, rows) if is_qa else _text_corpus(path, rows)
    holdout = tuple(sorted(set(holdout_ids)))
    for entity_id in holdout:
        corpus.entity(entity_id)  # refuses an unknown id
    corpus.holdout = holdout
    return corpus, None if forget_ids is None else split_from_ids(corpus, forget_ids)


def _qa_corpus(path: Path, rows) -> Corpus:
    qa, attributes = [], {}
    for number, row in rows:
        row_id = str(row.get("id", number))
        entity = str(row.get("entity", row_id))
        relation = str(row.get("relation", ""))  # "": one pool of every answer, for the base rate
        perturbed = tuple(str(p) for p in row.get("perturbed_answer", []))
        qa.append(QAItem(row_id, entity, relation, row["question"], row["answer"], 0, False, perturbed,
                         str(row.get("paraphrased_answer", row["answer"])), perturbed))
        # Without a relation, no two questions are about the same attribute: no neighbours.
        attributes.setdefault(entity, {})[relation or f"question {row_id}"] = row["answer"]
    entities = [Entity(e, e, "user", attrs) for e, attrs in attributes.items()]
    return Corpus(path.stem, entities, qa, [], [])


def _text_corpus(path: Path, rows) -> Corpus:
    bios, general, entity_ids = [], [], {}
    for number, row in rows:
        row_id = str(row.get("id", number))
        entity = row.get("entity", row_id)
        if entity is None:
            general.append(TextItem(row_id, None, row["text"], False))
        else:
            entity_ids[str(entity)] = None
            bios.append(TextItem(row_id, str(entity), row["text"], False))
    entities = [Entity(e, e, "text", {}) for e in entity_ids]
    return Corpus(path.stem, entities, [], bios, general)


def sliced(corpus: Corpus, kind: str, relations: Iterable[str], n_entities: int, n_holdout: int) -> Corpus:
    """A small corpus cut from `corpus`: its first `n_entities` of `kind`, only `relations`, questions
    only (no biographies, no general text), the last `n_holdout` of them held out. A model learns it
    in seconds: for tests and quick experiments (tests/test_lm_robustness.py)."""
    relations = tuple(relations)
    chosen = [e for e in corpus.entities if e.kind == kind][:n_entities]
    known = {r.name for r in KINDS.get(kind, ())}
    if len(chosen) <= n_holdout or not relations or not set(relations) <= known:
        raise UnlearnInputError(f"cannot cut {n_entities} entities of kind {kind!r} with relations {relations}")
    ids = {e.id for e in chosen}
    entities = [Entity(e.id, e.name, e.kind, {r: e.attributes[r] for r in relations}) for e in chosen]
    qa = [q for q in corpus.qa if q.entity in ids and q.relation in relations]
    return Corpus(f"{corpus.name}-{kind}-{n_entities}", entities, qa, [], [],
                  tuple(e.id for e in chosen[-n_holdout:]), {r: corpus.pools[r] for r in relations})
