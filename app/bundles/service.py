"""A study bundle: one zip file holding runs and everything their results are computed from,
to attach to a paper or move between instances (SQLite and Postgres alike).

Members (JSON Lines, one row per line, each table's own columns; ids are the exporting
database's, mapped to new ones on import):
question_sets, questions, variant_templates, sdi_datasets, sdi_examples, model_configs,
raters, runs, run_arms, prompt_variants, replies, rating_rounds, rating_round_runs,
rating_items, ratings, adjudications, judge_labels; and ``manifest.json``: the format and its
version, the app version, when it was made, the runs, and each member's SHA-256, size and
row count. An import checks every hash before it reads a row.

What is left out: accounts (raters and adjudicating admins become pseudonyms R1, R2, … by
ascending account id; on import each is a new account that cannot log in), API keys (a model
config keeps only the *name* of its key's environment variable; ``extra`` settings whose name
says key, token, secret, password or authorization are dropped), rating leases and
revisions, jobs, the model-call cache, stored results (recomputed), fine-tuning jobs and
training runs. The rating tallies the results read are rebuilt from the ratings.

An import is all or nothing (the caller's transaction). A name already taken in the target
(question set, template, model config, SDI dataset) gets `` (bundle N)`` appended.
"""

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import DateTime, Table, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import Select
from sqlmodel import Session

from app.models import (
    Adjudication,
    JudgeLabel,
    ModelConfig,
    PromptVariant,
    Question,
    QuestionSet,
    RaterState,
    Rating,
    RatingItem,
    RatingRound,
    RatingRoundRun,
    Reply,
    Role,
    Run,
    RunArm,
    SdiDataset,
    SdiExample,
    User,
    VariantTemplate,
    new_item_token,
)
from app.rating import tallies

FORMAT = "sdilab-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
# Uncompressed bytes an import reads at most (a zip can expand far beyond its size).
MAX_BYTES = 4 * 1024**3
_BATCH = 1000
_SECRET_WORDS = ("key", "token", "secret", "password", "authorization")


def _t(model: Any) -> Table:
    return model.__table__


class BundleError(ValueError):
    """A bundle that cannot be read or imported; the message is for the user."""


@dataclass(frozen=True)
class Part:
    """One member: a table, the columns that refer to other members' ids, and how its rows
    are chosen from the runs being exported."""

    name: str
    table: Table
    refs: dict[str, str] = field(default_factory=dict)
    # Columns set to None on import (users' ids, references left out of bundles).
    cleared: tuple[str, ...] = ()
    has_id: bool = True


def app_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sdilab")
    except PackageNotFoundError:
        return "unknown"


def _parts() -> list[Part]:
    """In import order: every member after those it refers to."""
    return [
        Part("raters", _t(User)),
        Part("question_sets", _t(QuestionSet), cleared=("created_by",)),
        # duplicate_of_id refers to the same member: set once every question is in.
        Part("questions", _t(Question), {"question_set_id": "question_sets"}),
        Part("variant_templates", _t(VariantTemplate)),
        Part(
            "sdi_datasets",
            _t(SdiDataset),
            {"question_set_id": "question_sets", "test_set_id": "question_sets"},
            cleared=("created_by",),
        ),
        Part(
            "sdi_examples",
            _t(SdiExample),
            {"dataset_id": "sdi_datasets", "question_id": "questions"},
        ),
        Part("model_configs", _t(ModelConfig), {"sdi_dataset_id": "sdi_datasets"}),
        Part("runs", _t(Run), {"question_set_id": "question_sets"}, cleared=("created_by",)),
        Part("run_arms", _t(RunArm), {"run_id": "runs", "model_config_id": "model_configs"}),
        Part(
            "prompt_variants",
            _t(PromptVariant),
            {"run_id": "runs", "question_id": "questions", "template_id": "variant_templates"},
        ),
        Part(
            "replies",
            _t(Reply),
            {
                "run_id": "runs",
                "prompt_variant_id": "prompt_variants",
                "arm_id": "run_arms",
                "cached_from_run_id": "runs",
            },
        ),
        Part("rating_rounds", _t(RatingRound), cleared=("created_by",)),
        Part(
            "rating_round_runs",
            _t(RatingRoundRun),
            {"round_id": "rating_rounds", "run_id": "runs"},
            has_id=False,
        ),
        Part(
            "rating_items",
            _t(RatingItem),
            {"reply_id": "replies", "round_id": "rating_rounds"},
            has_id=False,
        ),
        Part(
            "ratings",
            _t(Rating),
            {"reply_id": "replies", "rater_id": "raters", "round_id": "rating_rounds"},
        ),
        Part("adjudications", _t(Adjudication), {"reply_id": "replies", "admin_id": "raters"}),
        Part(
            "judge_labels",
            _t(JudgeLabel),
            {"reply_id": "replies", "judge_model_id": "model_configs"},
        ),
    ]


PARTS = _parts()
PART_NAMES = [p.name for p in PARTS]
# Columns that must not reach a bundle, per member.
_NAMED = {
    "question_sets": ("name",),
    "variant_templates": ("name",),
    "sdi_datasets": ("name",),
    "model_configs": ("name",),
}


# ---------------------------------------------------------------- export


def _ids(session: Session, query: Select[Any]) -> list[int]:
    return sorted({int(v) for v in session.execute(query).scalars() if v is not None})


@dataclass
class Selection:
    """The ids of each member's rows that a bundle of ``runs`` holds."""

    runs: list[int]
    ids: dict[str, list[int]] = field(default_factory=dict)
    pseudonyms: dict[int, str] = field(default_factory=dict)


def select_study(session: Session, run_ids: Sequence[int] | None = None) -> Selection:
    """The runs (default: every run) and what their results are computed from."""
    run = _t(Run)
    runs = (
        _ids(session, select(run.c.id))
        if not run_ids
        else _ids(session, select(run.c.id).where(run.c.id.in_(list(run_ids))))
    )
    missing = sorted(set(run_ids or []) - set(runs))
    if missing:
        raise BundleError(f"No run {', '.join(map(str, missing))}")
    if not runs:
        raise BundleError("There are no runs to bundle.")
    arm, pv, reply = _t(RunArm), _t(PromptVariant), _t(Reply)
    jl, cfg, ds = _t(JudgeLabel), _t(ModelConfig), _t(SdiDataset)
    rating, adj, rrr = _t(Rating), _t(Adjudication), _t(RatingRoundRun)
    replies_of = select(reply.c.id).where(reply.c.run_id.in_(runs))
    configs = set(_ids(session, select(arm.c.model_config_id).where(arm.c.run_id.in_(runs))))
    configs |= set(_ids(session, select(jl.c.judge_model_id).where(jl.c.reply_id.in_(replies_of))))
    sets = set(_ids(session, select(run.c.question_set_id).where(run.c.id.in_(runs))))
    datasets = set(_ids(session, select(cfg.c.sdi_dataset_id).where(cfg.c.id.in_(sorted(configs)))))
    datasets |= set(_ids(session, select(ds.c.id).where(ds.c.question_set_id.in_(sorted(sets)))))
    for set_id, test_id in session.execute(
        select(ds.c.question_set_id, ds.c.test_set_id).where(ds.c.id.in_(sorted(datasets)))
    ):
        sets |= {int(set_id)} | ({int(test_id)} if test_id is not None else set())
    raters = set(_ids(session, select(rating.c.rater_id).where(rating.c.reply_id.in_(replies_of))))
    raters |= set(_ids(session, select(adj.c.admin_id).where(adj.c.reply_id.in_(replies_of))))
    ordered = sorted(raters)
    return Selection(
        runs=runs,
        ids={
            "raters": ordered,
            "question_sets": sorted(sets),
            "variant_templates": _ids(
                session, select(pv.c.template_id).where(pv.c.run_id.in_(runs))
            ),
            "sdi_datasets": sorted(datasets),
            "model_configs": sorted(configs),
            "rating_rounds": _ids(session, select(rrr.c.round_id).where(rrr.c.run_id.in_(runs))),
        },
        pseudonyms={user_id: f"R{i}" for i, user_id in enumerate(ordered, start=1)},
    )


def _rows_query(part: Part, chosen: Selection) -> Select[Any]:
    t = part.table
    runs = chosen.runs
    reply = _t(Reply)
    replies_of = select(reply.c.id).where(reply.c.run_id.in_(runs))
    by_id = {
        "question_sets",
        "variant_templates",
        "sdi_datasets",
        "model_configs",
        "rating_rounds",
    }
    if part.name in by_id:
        where = t.c.id.in_(chosen.ids[part.name])
    elif part.name == "questions":
        where = t.c.question_set_id.in_(chosen.ids["question_sets"])
    elif part.name == "sdi_examples":
        where = t.c.dataset_id.in_(chosen.ids["sdi_datasets"])
    elif part.name in ("runs",):
        where = t.c.id.in_(runs)
    elif part.name in ("run_arms", "prompt_variants", "replies", "rating_round_runs"):
        where = t.c.run_id.in_(runs)
    elif part.name in ("rating_items", "ratings", "adjudications", "judge_labels"):
        where = t.c.reply_id.in_(replies_of)
    else:
        raise AssertionError(part.name)
    order = [t.c.id] if part.has_id else list(t.primary_key.columns)
    return select(t).where(where).order_by(*order).execution_options(yield_per=_BATCH)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    return value


def _scrubbed(extra: Any) -> Any:
    if not isinstance(extra, dict):
        return extra
    return {
        k: _scrubbed(v)
        for k, v in extra.items()
        if not any(word in str(k).lower() for word in _SECRET_WORDS)
    }


def _records(session: Session, part: Part, chosen: Selection) -> Iterator[dict[str, Any]]:
    if part.name == "raters":
        for user_id, name in chosen.pseudonyms.items():
            role = session.execute(select(_t(User).c.role).where(_t(User).c.id == user_id)).scalar()
            yield {"id": user_id, "pseudonym": name, "role": role or Role.rater.value}
        return
    for row in session.execute(_rows_query(part, chosen)):
        record = {k: _plain(v) for k, v in row._mapping.items()}
        if part.name == "model_configs":
            record["extra"] = _scrubbed(record.get("extra"))
        if part.name == "rating_items":
            record.pop("token", None)  # a new one on import: tokens are unique
        for column in part.cleared:
            record[column] = None
        yield record


class _Hashing(io.RawIOBase):
    """Counts and hashes what is written through it into a zip member."""

    def __init__(self, target: IO[bytes]) -> None:
        self.target = target
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.sha.update(chunk)
        self.size += len(chunk)
        self.target.write(chunk)
        return len(chunk)


def export_bundle(
    session: Session, target: IO[bytes] | Path, run_ids: Sequence[int] | None = None
) -> dict[str, Any]:
    """Write the bundle of ``run_ids`` (default: every run) to ``target``; returns the
    manifest."""
    chosen = select_study(session, run_ids)
    members: dict[str, dict[str, Any]] = {}
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for part in PARTS:
            name = f"{part.name}.jsonl"
            rows = 0
            with archive.open(name, "w", force_zip64=True) as member:
                hashing = _Hashing(member)
                lines: list[str] = []
                for record in _records(session, part, chosen):
                    lines.append(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
                    rows += 1
                    if len(lines) >= _BATCH:
                        hashing.write("".join(lines).encode("utf-8"))
                        lines.clear()
                if lines:
                    hashing.write("".join(lines).encode("utf-8"))
            members[name] = {"sha256": hashing.sha.hexdigest(), "bytes": hashing.size, "rows": rows}
        run = _t(Run)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "app_version": app_version(),
            "created_at": datetime.now(UTC).isoformat(),
            "runs": [
                {"id": int(i), "name": str(n)}
                for i, n in session.execute(
                    select(run.c.id, run.c.name).where(run.c.id.in_(chosen.runs)).order_by(run.c.id)
                )
            ],
            "members": members,
        }
        archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


# ---------------------------------------------------------------- import


@dataclass
class Imported:
    manifest: dict[str, Any]
    runs: dict[int, int]  # bundle run id -> new run id
    rows: dict[str, int]
    renamed: list[str] = field(default_factory=list)


def read_manifest(archive: zipfile.ZipFile, *, max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """The manifest, once every member's size and hash match it."""
    names = set(archive.namelist())
    if MANIFEST not in names:
        raise BundleError("This is not an sdilab bundle: it has no manifest.json.")
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"manifest.json is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError("manifest.json is not an sdilab bundle's manifest.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"The bundle's format version is {manifest.get('format_version')!r}; this sdilab "
            f"reads version {FORMAT_VERSION}."
        )
    members = manifest.get("members")
    if not isinstance(members, dict):
        raise BundleError("manifest.json lists no members.")
    expected = {f"{name}.jsonl" for name in PART_NAMES}
    if set(members) != expected:
        extra = sorted(set(members) - expected)
        lacking = sorted(expected - set(members))
        raise BundleError(f"The bundle's members are not this format's: {extra or lacking}")
    total = sum(archive.getinfo(n).file_size for n in members if n in names)
    if total > max_bytes:
        raise BundleError(f"The bundle holds {total:,} bytes uncompressed; at most {max_bytes:,}.")
    for name, meta in members.items():
        if name not in names:
            raise BundleError(f"{name} is listed in the manifest but not in the bundle.")
        sha = hashlib.sha256()
        with archive.open(name) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        if not isinstance(meta, dict) or sha.hexdigest() != meta.get("sha256"):
            raise BundleError(f"{name} does not match its SHA-256 in the manifest (altered?).")
    return manifest


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[dict[str, Any]]:
    with archive.open(f"{name}.jsonl") as handle:
        for number, raw in enumerate(io.TextIOWrapper(handle, encoding="utf-8"), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise BundleError(f"{name}.jsonl line {number}: not JSON ({exc})") from exc
            if not isinstance(record, dict):
                raise BundleError(f"{name}.jsonl line {number}: not an object")
            yield record


def _typed(table: Table, record: dict[str, Any], name: str) -> dict[str, Any]:
    """A record's values for the table's columns (times parsed back); unknown keys refused."""
    unknown = set(record) - set(table.c.keys())
    if unknown:
        raise BundleError(f"{name}: unknown column(s) {', '.join(sorted(unknown))}")
    missing = [c.name for c in table.primary_key.columns if record.get(c.name) is None]
    if missing:
        raise BundleError(f"{name}: a row has no {', '.join(missing)}")
    out: dict[str, Any] = {}
    for key, value in record.items():
        column = table.c[key]
        kind = column.type
        is_time = isinstance(kind, DateTime) or isinstance(
            getattr(kind, "impl_instance", None), DateTime
        )
        if is_time and isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError as exc:
                raise BundleError(f"{name}: {key} {value!r} is not a time") from exc
        out[key] = value
    return out


def _free_name(session: Session, table: Table, name: str, renamed: list[str]) -> str:
    taken = session.execute(select(func.count()).where(table.c.name == name)).scalar_one()
    if not taken:
        return name
    for n in range(1, 10_000):
        candidate = f"{name} (bundle {n})"
        limit = getattr(table.c.name.type, "length", None) or 120
        if len(candidate) > limit:
            candidate = f"{name[: limit - len(f' (bundle {n})')]} (bundle {n})"
        if not session.execute(select(func.count()).where(table.c.name == candidate)).scalar_one():
            renamed.append(f"{table.name}: {name!r} is {candidate!r}")
            return candidate
    raise BundleError(f"No free name for {name!r} in {table.name}")


def _insert(
    session: Session, table: Table, rows: list[dict[str, Any]], old_ids: list[int] | None
) -> dict[int, int]:
    """Insert rows in order; old id -> new id when the table has ids."""
    if not rows:
        return {}
    if old_ids is None:
        session.execute(insert(table), rows)
        return {}
    result = session.execute(
        insert(table).returning(table.c.id, sort_by_parameter_order=True), rows
    )
    return dict(zip(old_ids, (int(i) for i in result.scalars()), strict=True))


def _raters(session: Session, records: Iterable[dict[str, Any]], tag: str) -> dict[int, int]:
    users = _t(User)
    mapping: dict[int, int] = {}
    for record in records:
        pseudonym = str(record.get("pseudonym") or "")
        if not pseudonym.startswith("R") or not pseudonym[1:].isdigit():
            raise BundleError(f"raters: {pseudonym!r} is not a pseudonym (R1, R2, …)")
        role = record.get("role")
        if role not in (Role.rater.value, Role.admin.value):
            role = Role.rater.value
        email = f"{pseudonym.lower()}.{tag}@bundle.invalid"
        found = session.execute(select(users.c.id).where(users.c.email == email)).scalar()
        if found is None:
            found = session.execute(
                insert(users)
                .values(
                    email=email,
                    display_name=f"{pseudonym} (bundle {tag})",
                    role=role,
                    password_hash="",
                    is_active=False,
                    created_at=datetime.now(UTC),
                )
                .returning(users.c.id)
            ).scalar_one()
        mapping[int(record["id"])] = int(found)
    return mapping


def import_bundle(
    session: Session, source: IO[bytes] | Path, *, max_bytes: int = MAX_BYTES
) -> Imported:
    """Add a bundle's study to the database, with new ids; raises BundleError."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"The file is not a zip bundle: {exc}") from exc
    with archive:
        manifest = read_manifest(archive, max_bytes=max_bytes)
        tag = manifest["members"]["runs.jsonl"]["sha256"][:10]
        maps: dict[str, dict[int, int]] = {}
        counts: dict[str, int] = {}
        renamed: list[str] = []
        duplicates: list[tuple[int, int]] = []
        try:
            for part in PARTS:
                if part.name == "raters":
                    maps["raters"] = _raters(session, _lines(archive, "raters"), tag)
                    counts["raters"] = len(maps["raters"])
                    continue
                maps[part.name] = {}
                counts[part.name] = 0
                batch: list[dict[str, Any]] = []
                old: list[int] = []

                def flush(
                    part: Part = part, batch: list[Any] = batch, old: list[int] = old
                ) -> None:
                    maps[part.name] |= _insert(
                        session, part.table, batch, old if part.has_id else None
                    )
                    counts[part.name] += len(batch)
                    batch.clear()
                    old.clear()

                for record in _lines(archive, part.name):
                    row = _typed(part.table, record, f"{part.name}.jsonl")
                    row = _mapped(session, part, row, maps, renamed, duplicates)
                    if part.has_id:
                        old.append(int(record["id"]))
                    batch.append(row)
                    if len(batch) >= _BATCH:
                        flush()
                flush()
        except BundleError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"The bundle's rows do not fit this database: {exc!r}") from exc
        except SQLAlchemyError as exc:
            # A constraint or a type the database refuses: the caller's transaction is rolled
            # back (on Postgres it cannot go on anyway).
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            raise BundleError(f"The database refused the bundle's rows: {reason}") from exc
        _link_duplicates(session, duplicates, maps["questions"])
        new_runs = sorted(maps["runs"].values())
        _rater_states(session, new_runs)
        tallies.rebuild(session, new_runs)
        session.flush()
    return Imported(manifest, maps["runs"], counts, renamed)


def _mapped(
    session: Session,
    part: Part,
    row: dict[str, Any],
    maps: dict[str, dict[int, int]],
    renamed: list[str],
    duplicates: list[tuple[int, int]],
) -> dict[str, Any]:
    old_id = row.pop("id", None)
    for column in part.cleared:
        row[column] = None
    for column, target in part.refs.items():
        value = row.get(column)
        if value is None:
            continue
        new = maps[target].get(int(value))
        if new is None:
            if part.table.c[column].nullable:
                row[column] = None
                continue
            raise BundleError(f"{part.name}.jsonl: {column} {value} is not a row of {target}.jsonl")
        row[column] = new
    if part.name in _NAMED:
        row["name"] = _free_name(session, part.table, str(row.get("name", "")), renamed)
    if part.name == "questions" and row.get("duplicate_of_id") is not None:
        duplicates.append((int(old_id), int(row["duplicate_of_id"])))
        row["duplicate_of_id"] = None
    if part.name == "rating_items":
        row["token"] = new_item_token()
    if part.name == "model_configs":
        row["extra"] = _scrubbed(row.get("extra") or {})
    return row


def _link_duplicates(
    session: Session, duplicates: list[tuple[int, int]], questions: dict[int, int]
) -> None:
    q = _t(Question)
    for old, earlier in duplicates:
        if old in questions and earlier in questions:
            session.execute(
                update(q).where(q.c.id == questions[old]).values(duplicate_of_id=questions[earlier])
            )


def _rater_states(session: Session, run_ids: list[int]) -> None:
    """Each rater's place in each imported round: their count of ratings (the round's)."""
    if not run_ids:
        return
    rating, reply = _t(Rating), _t(Reply)
    rows = session.execute(
        select(rating.c.round_id, rating.c.rater_id, func.count(), func.max(rating.c.created_at))
        .select_from(rating.join(reply, reply.c.id == rating.c.reply_id))
        .where(reply.c.run_id.in_(run_ids), rating.c.round_id.is_not(None))
        .group_by(rating.c.round_id, rating.c.rater_id)
    ).all()
    if rows:
        session.execute(
            insert(_t(RaterState)),
            [
                {
                    "round_id": round_id,
                    "rater_id": rater_id,
                    "cursor": 0,
                    "done": int(n),
                    "skipped": 0,
                    "started_at": datetime.now(UTC),
                    "last_rated_at": last,
                }
                for round_id, rater_id, n, last in rows
            ],
        )
