"""Case row ↔ online submission: by 申报编号, else by applicant and title, never a guess.

Pure decisions over plain data. A `SubmissionIndex` is built once over every online
submission and answers many forms; each row gets a `RowMatch` that says how it was decided
("ref", "name", "ambiguous", "none"), the candidates considered and the evidence, so that
staff can see why. A close runner-up or a weak best candidate makes a row "ambiguous" and
leaves the decision to staff: a wrong link would send the wrong applicant a receipt.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from rapidfuzz import fuzz, process
from rapidfuzz.distance import LCSseq

from parsers.model import Problem
from parsers.normalize import (
    applicant_core,
    normalize_applicant,
    normalize_ref,
    normalize_title,
    title_core,
    units_match,
)

MatchMethod = Literal["ref", "name", "ambiguous", "none"]

_PHASE = re.compile(r"[一二三四五六七八九十\d]+期")
_NUMBER = re.compile(r"\d+")
_PRESELECTED_PER_SHORTLISTED = 5  # titles counted in, per title ranked by edit similarity


@dataclass(frozen=True)
class RowToMatch:
    """One case row of a recommendation form, as written on the form."""

    row: int
    title: str
    applicant: str
    ref: str | None = None


@dataclass(frozen=True)
class Candidate:
    """One online submission that a row may be matched to."""

    ref: str
    title: str
    applicant: str
    recommender: str | None  # 推荐单位 as the applicant entered it online
    route: str  # "recommended" | "voluntary"


@dataclass(frozen=True)
class Thresholds:
    """The knobs of a name match. Scores run from 0 to 100."""

    accept: float = 88.0
    """A name match needs a combined score at least this high."""
    margin: float = 6.0
    """...and must lead the runner-up by at least this much, else the row is ambiguous."""
    shortened: float = 96.0
    """Title score when the form's title is the submission's with a leading 基于…的 / 面向…的
    or a trailing 平台 / 系统 / 解决方案 / （试点） / （一期） dropped."""
    plausible: float = 72.0
    """Candidates scoring at least this are listed; a row with one is ambiguous, not none."""
    title_floor: float = 85.0
    """A name match needs the title alone at least this similar: one applicant has many cases."""
    applicant_floor: float = 60.0
    """A name match needs the applicant at least this similar, when the form names one."""
    title_weight: float = 0.65
    """Share of the title in the combined score; the applicant has the rest."""
    recommender_boost: float = 4.0
    """Added when the submission's own 推荐单位 is the unit whose form is being matched.

    Title and applicant fill the scale below it: a perfect match of a voluntary submission
    scores 96 + `voluntary_boost`, one recommended by this unit 100."""
    voluntary_boost: float = 1.0
    """Added for a voluntary submission: a unit may recommend a case submitted voluntarily."""
    other_unit_penalty: float = 4.0
    """Taken off when the submission names another recommending unit."""
    missing_applicant_penalty: float = 10.0
    """Taken off the title score when the form leaves the applicant empty."""
    disagreement: float = 70.0
    """A match by 申报编号 warns when the form's title or applicant scores below this."""
    shortlist: int = 10
    """Closest titles scored per row, besides those with the same title or applicant."""
    listed: int = 5
    """At most this many candidates are kept on a decision."""


DEFAULT_THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class RowMatch:
    """The decision for one row, with the evidence a person needs to check it."""

    row: int
    method: MatchMethod
    submission_ref: str | None
    score: float
    candidates: tuple[tuple[str, float], ...]  # (ref, score), best first
    evidence: tuple[str, ...]
    warnings: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class _Record:
    """A candidate with its comparison keys computed once."""

    candidate: Candidate
    title_key: str
    applicant_key: str
    applicant_core: str
    title_core: str


@dataclass(frozen=True)
class _RowKeys:
    """A form row's comparison keys, computed once per row."""

    title: str
    applicant: str
    applicant_core: str
    title_core: str

    @classmethod
    def of(cls, row: RowToMatch) -> _RowKeys:
        title = normalize_title(row.title)
        return cls(
            title,
            normalize_applicant(row.applicant),
            applicant_core(row.applicant),
            title_core(title),
        )


@dataclass(frozen=True)
class _Scored:
    """One candidate scored against one row."""

    ref: str
    score: float
    title: float
    applicant: float
    eligible: bool  # title and applicant each pass their floor
    evidence: tuple[str, ...]
    warnings: tuple[Problem, ...] = field(default=())
    own_unit: bool = False  # the submission names the form's unit as its recommender


def _character_pairs(key: str) -> set[str]:
    """The distinct two-character slices of a key (the key itself when shorter)."""
    if len(key) < 2:
        return {key} if key else set()
    return {key[start : start + 2] for start in range(len(key) - 1)}


def _qualifiers_conflict(first: str, second: str) -> bool:
    """Whether both titles name a phase (一期/二期) or numbers, and not the same ones."""
    first_phases, second_phases = set(_PHASE.findall(first)), set(_PHASE.findall(second))
    if first_phases and second_phases and first_phases != second_phases:
        return True
    first_numbers, second_numbers = set(_NUMBER.findall(first)), set(_NUMBER.findall(second))
    return bool(
        first_numbers
        and second_numbers
        and not (first_numbers <= second_numbers or second_numbers <= first_numbers)
    )


def _similarity(first: str, second: str, *, unexplained_cost: float) -> tuple[float, bool]:
    """Similarity of two keys, and whether the shorter lies in order inside the longer.

    People drop words (a prefix, 有限公司, (一期)) far more often than they change them, so
    a character of the shorter key missing from the longer one costs much more than a
    character the shorter key leaves out.
    """
    if first == second:
        return 100.0, True
    shorter, longer = sorted((len(first), len(second)))
    if shorter == 0:
        return 0.0, False
    common = LCSseq.similarity(first, second)
    unexplained = shorter - common
    coverage = common / longer
    score = 100.0 - 40.0 * (1.0 - coverage) - unexplained_cost * unexplained
    return max(0.0, score), unexplained == 0


def _title_score(keys: _RowKeys, record: _Record, thresholds: Thresholds) -> tuple[float, str]:
    """Title similarity with its evidence string."""
    form_key, record_key = keys.title, record.title_key
    if not form_key:
        return 0.0, "no title on the form"
    score, contained = _similarity(form_key, record_key, unexplained_cost=10.0)
    if score == 100.0:
        return score, "title 100"
    if _qualifiers_conflict(form_key, record_key):
        score = min(score, 70.0)
        return score, f"title {score:.0f} (phase or number differs)"
    if _shortened(keys, record):
        score = max(score, thresholds.shortened)
        return score, f"title {score:.0f} (one title is the other shortened)"
    if contained:
        return score, f"title {score:.0f} (one title contains the other)"
    return score, f"title {score:.0f}"


def _shortened(keys: _RowKeys, record: _Record) -> bool:
    """Whether the form's title is the submission's with only droppable words (基于…的,
    平台…) left out. Only the unit's shortening counts: a form title longer than the
    submission's says something the submission does not."""
    return (
        keys.title_core == record.title_core
        and len(keys.title) < len(record.title_key)
        and keys.title in record.title_key
    )


def _applicant_score(form_key: str, form_core: str, record: _Record) -> tuple[float, str]:
    """Applicant similarity on the full key or, as a secondary key, without company suffixes."""
    if form_key == record.applicant_key:
        return 100.0, "applicant 100"
    if form_core == record.applicant_core:
        return 100.0, "applicant 100 (core)"
    # Cores only: shared legal forms (股份有限公司) would make any two companies look alike.
    # A changed character of a name costs more than in a title: it is another company.
    core, _ = _similarity(form_core, record.applicant_core, unexplained_cost=15.0)
    return core, f"applicant {core:.0f} (core)"


def _display(score: float) -> float:
    return round(score, 1)


class SubmissionIndex:
    """Every online submission, indexed once for matching the rows of many forms."""

    def __init__(self, submissions: Iterable[Candidate]) -> None:
        """Compute the keys of each submission and the lookup tables."""
        self._records: list[_Record] = []
        self._by_ref: dict[str, int] = {}
        self._by_title: dict[str, list[int]] = {}
        self._by_applicant: dict[str, list[int]] = {}
        for position, candidate in enumerate(submissions):
            record = _Record(
                candidate=candidate,
                title_key=normalize_title(candidate.title),
                applicant_key=normalize_applicant(candidate.applicant),
                applicant_core=applicant_core(candidate.applicant),
                title_core=title_core(normalize_title(candidate.title)),
            )
            self._records.append(record)
            self._by_ref.setdefault(normalize_ref(candidate.ref), position)
            self._by_title.setdefault(record.title_key, []).append(position)
            if record.title_core != record.title_key:
                self._by_title.setdefault(record.title_core, []).append(position)
            for key in {record.applicant_key, record.applicant_core}:
                self._by_applicant.setdefault(key, []).append(position)
        self._title_keys = [record.title_key for record in self._records]
        self._by_pair: dict[str, list[int]] = {}
        for position, title_key in enumerate(self._title_keys):
            for pair in _character_pairs(title_key):
                self._by_pair.setdefault(pair, []).append(position)
        self._unit_cache: dict[tuple[str, str], bool] = {}

    def __len__(self) -> int:
        return len(self._records)

    def match_rows(
        self,
        rows: Sequence[RowToMatch],
        *,
        unit: str | None,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        taken: Mapping[str, int] | None = None,
    ) -> list[RowMatch]:
        """Decide each row of one form; `unit` is the form's recommending unit.

        `taken` maps refs that other rows of this form already hold (staff decisions) to
        those rows' numbers; they always keep them. Two rows never claim one submission: the
        loser becomes ambiguous with a warning, it does not silently move to its runner-up.

        The form is decided as an assignment: a row left ambiguous only by a rival that
        another row of the form clearly holds is matched after all (see `_assign`).
        """
        ranked: list[list[_Scored]] = []
        decisions = [
            self._match_row(row, unit=unit, thresholds=thresholds, ranked=ranked) for row in rows
        ]
        held = {normalize_ref(ref): holder for ref, holder in (taken or {}).items()}
        decisions = _assign(decisions, ranked, held, thresholds)
        return _resolve_claims(decisions, held)

    # --- one row ---------------------------------------------------------------------

    def _match_row(
        self,
        row: RowToMatch,
        *,
        unit: str | None,
        thresholds: Thresholds,
        ranked: list[list[_Scored]],
    ) -> RowMatch:
        """Decide one row on its own; its scored candidates are appended to `ranked`."""
        ref_key = normalize_ref(row.ref) if row.ref else ""
        if not ref_key:
            return self._match_by_name(row, unit=unit, thresholds=thresholds, ranked=ranked)
        position = self._by_ref.get(ref_key)
        if position is None:
            by_name = self._match_by_name(row, unit=unit, thresholds=thresholds, ranked=ranked)
            return replace(
                by_name,
                evidence=(f"ref {ref_key} not found", *by_name.evidence),
                warnings=(
                    Problem("ref_not_in_export", {"ref": ref_key}),
                    *by_name.warnings,
                ),
            )
        ranked.append([])
        return self._match_by_ref(row, position, unit=unit, thresholds=thresholds)

    def _match_by_ref(
        self, row: RowToMatch, position: int, *, unit: str | None, thresholds: Thresholds
    ) -> RowMatch:
        record = self._records[position]
        ref = record.candidate.ref
        scored = self._score(_RowKeys.of(row), record, unit=unit, thresholds=thresholds)
        warnings: list[Problem] = []
        if scored.title < thresholds.disagreement:
            warnings.append(
                Problem(
                    "title_differs",
                    {"ref": ref, "title": record.candidate.title, "score": f"{scored.title:.0f}"},
                )
            )
        if scored.applicant < thresholds.disagreement and row.applicant.strip():
            warnings.append(
                Problem(
                    "applicant_differs",
                    {
                        "ref": ref,
                        "applicant": record.candidate.applicant,
                        "score": f"{scored.applicant:.0f}",
                    },
                )
            )
        evidence = (f"ref {ref}", *scored.evidence)
        if len(warnings) == 2:
            # The ref points to an unrelated record: if the names point clearly elsewhere,
            # the ref is probably mistyped and staff must choose.
            by_name = self._match_by_name(row, unit=unit, thresholds=thresholds)
            if by_name.method == "name" and by_name.submission_ref != ref:
                assert by_name.submission_ref is not None
                return RowMatch(
                    row=row.row,
                    method="ambiguous",
                    submission_ref=None,
                    score=by_name.score,
                    candidates=((by_name.submission_ref, by_name.score), (ref, scored.score)),
                    evidence=(*evidence, *by_name.evidence),
                    warnings=(
                        *warnings,
                        Problem(
                            "names_point_elsewhere",
                            {"name_ref": by_name.submission_ref, "ref": ref},
                        ),
                    ),
                )
        return RowMatch(
            row=row.row,
            method="ref",
            submission_ref=ref,
            score=100.0,
            candidates=((ref, 100.0),),
            evidence=evidence,
            warnings=(*warnings, *scored.warnings),
        )

    def _exact_hits(self, keys: _RowKeys) -> set[int]:
        """Submissions with the row's title (or its shortened core) or its applicant."""
        positions: set[int] = set(self._by_title.get(keys.title, ()))
        positions.update(self._by_title.get(keys.title_core, ()))
        positions.update(self._by_applicant.get(keys.applicant, ()))
        positions.update(self._by_applicant.get(keys.applicant_core, ()))
        return positions

    def _closest_titles(self, keys: _RowKeys, limit: int) -> set[int]:
        """The submissions with the closest titles.

        Found as in set-similarity joins with prefix filtering: any title sharing at least
        half of the row's character pairs holds one of the rarer half, so only those postings
        are counted; the best counted are ranked by edit similarity. Scanning every title for
        every row would dominate the time of a large export.
        """
        postings = sorted(
            (self._by_pair[pair] for pair in _character_pairs(keys.title) if pair in self._by_pair),
            key=len,
        )
        shared: Counter[int] = Counter()
        for posting in postings[: len(postings) // 2 + 1]:
            shared.update(posting)
        preselected = {
            position: self._title_keys[position]
            for position, _ in shared.most_common(_PRESELECTED_PER_SHORTLISTED * limit)
        }
        closest = process.extract(
            keys.title, preselected, scorer=fuzz.ratio, processor=None, limit=limit, score_cutoff=50
        )
        return {position for _, _, position in closest}

    def _match_by_name(
        self,
        row: RowToMatch,
        *,
        unit: str | None,
        thresholds: Thresholds,
        ranked: list[list[_Scored]] | None = None,
    ) -> RowMatch:
        keys = _RowKeys.of(row)
        positions = self._exact_hits(keys)
        found = [
            self._score(keys, self._records[position], unit=unit, thresholds=thresholds)
            for position in positions
        ]
        # With the title (or its shortened core) and the applicant both found as written,
        # every rival that could matter is among the hits already: another case of this
        # applicant (same applicant key) or the same title (same title or core key). The
        # fuzzy search is for the other rows.
        if not any(
            item.title >= thresholds.shortened and item.applicant == 100.0 for item in found
        ):
            for position in self._closest_titles(keys, thresholds.shortlist) - positions:
                found.append(
                    self._score(keys, self._records[position], unit=unit, thresholds=thresholds)
                )
        scored = sorted(found, key=lambda item: (-item.score, item.ref))
        if ranked is not None:
            ranked.append(scored)
        listed = tuple(
            (item.ref, _display(item.score))
            for item in scored[: thresholds.listed]
            if item.score >= thresholds.plausible
        )
        if not scored or scored[0].score < thresholds.plausible:
            best = f"best candidate {scored[0].ref} at {scored[0].score:.0f}" if scored else ""
            return RowMatch(
                row=row.row,
                method="none",
                submission_ref=None,
                score=_display(scored[0].score) if scored else 0.0,
                candidates=(),
                evidence=("no online submission with a similar title and applicant",)
                + ((best,) if best else ()),
            )
        best_item = scored[0]
        runner_up = scored[1] if len(scored) > 1 else None
        runner_up_note = (
            (f"runner-up {runner_up.ref} at {runner_up.score:.0f}",) if runner_up else ()
        )
        # A runner-up within the margin blocks the match unless its own title is clearly
        # worse: an exact title is not made doubtful by another case of the same applicant.
        rival = next((item for item in scored[1:] if _rivals(best_item, item, thresholds)), None)
        if best_item.score >= thresholds.accept and best_item.eligible and rival is None:
            return RowMatch(
                row=row.row,
                method="name",
                submission_ref=best_item.ref,
                score=_display(best_item.score),
                candidates=listed,
                evidence=(*best_item.evidence, *runner_up_note),
                warnings=best_item.warnings,
            )
        if rival is not None:
            reason = Problem(
                "candidates_too_close",
                {
                    "best": best_item.ref,
                    "best_score": f"{best_item.score:.0f}",
                    "rival": rival.ref,
                    "rival_score": f"{rival.score:.0f}",
                },
            )
        else:
            reason = Problem(
                "candidate_uncertain", {"ref": best_item.ref, "score": f"{best_item.score:.0f}"}
            )
        return RowMatch(
            row=row.row,
            method="ambiguous",
            submission_ref=None,
            score=_display(best_item.score),
            candidates=listed,
            evidence=(*best_item.evidence, *runner_up_note),
            warnings=(reason, *best_item.warnings),
        )

    def _score(
        self, keys: _RowKeys, record: _Record, *, unit: str | None, thresholds: Thresholds
    ) -> _Scored:
        """Combine title and applicant similarity and the submission's own recommender."""
        title, title_evidence = _title_score(keys, record, thresholds)
        if keys.applicant:
            applicant, applicant_evidence = _applicant_score(
                keys.applicant, keys.applicant_core, record
            )
            combined = thresholds.title_weight * title + (1.0 - thresholds.title_weight) * applicant
            eligible = title >= thresholds.title_floor and applicant >= thresholds.applicant_floor
        else:
            applicant, applicant_evidence = 0.0, "no applicant on the form"
            combined = title - thresholds.missing_applicant_penalty
            eligible = title >= thresholds.title_floor
        # Title and applicant share the scale below the recommender boost, so that only a
        # perfect match recommended by this very unit reaches 100 and rankings never tie
        # at the top.
        combined *= (100.0 - thresholds.recommender_boost) / 100.0
        evidence = [title_evidence, applicant_evidence]
        warnings: list[Problem] = []
        candidate = record.candidate
        own_unit = False
        if candidate.route == "voluntary":
            combined += thresholds.voluntary_boost
            evidence.append("voluntary submission")
        elif unit and candidate.recommender:
            if self._same_unit(unit, candidate.recommender):
                own_unit = True
                combined += thresholds.recommender_boost
                evidence.append("recommender matches unit")
            else:
                combined -= thresholds.other_unit_penalty
                evidence.append(f"recommender is another unit ({candidate.recommender})")
                warnings.append(
                    Problem(
                        "recommender_other_unit",
                        {"ref": candidate.ref, "recommender": candidate.recommender},
                    )
                )
        return _Scored(
            ref=candidate.ref,
            score=min(100.0, max(0.0, combined)),
            title=title,
            applicant=applicant,
            eligible=eligible,
            evidence=tuple(evidence),
            warnings=tuple(warnings),
            own_unit=own_unit,
        )

    def _same_unit(self, unit: str, recommender: str) -> bool:
        key = (unit, recommender)
        if key not in self._unit_cache:
            self._unit_cache[key] = units_match(unit, recommender)
        return self._unit_cache[key]


def _rivals(best: _Scored, other: _Scored, thresholds: Thresholds) -> bool:
    """Whether `other` is too close to `best` for `best` to be taken.

    A runner-up within the margin blocks the match unless its own title is clearly worse:
    an exact title is not made doubtful by another case of the same applicant."""
    return (
        best.score - other.score < thresholds.margin
        and best.title - other.title < 2 * thresholds.margin
    )


def _assign(
    decisions: list[RowMatch],
    ranked: Sequence[Sequence[_Scored]],
    held: Mapping[str, int],
    thresholds: Thresholds,
) -> list[RowMatch]:
    """Decide the form's rows as an assignment, the unit's own submissions first.

    A row left ambiguous is matched to its best candidate not held by another row of the
    form when: that candidate is acceptable and leads every other free candidate by the
    margin; no candidate held by another row scores higher for it (its best is someone
    else's: it never moves to a runner-up); and no other undecided row of the form comes
    within the margin of it for that candidate (it is the candidate's best row). A real
    rival, one no other row explains, keeps the row ambiguous.
    """
    holders: dict[str, int] = dict(held)
    for decision in decisions:
        if decision.submission_ref is not None:
            holders.setdefault(normalize_ref(decision.submission_ref), decision.row)
    scores_by_ref: dict[str, list[tuple[int, float]]] = {}
    for position, scored in enumerate(ranked):
        for item in scored:
            scores_by_ref.setdefault(item.ref, []).append((position, item.score))
    resolved = list(decisions)
    for own_unit_only in (True, False):
        progress = True
        while progress:
            progress = False
            for position, decision in enumerate(resolved):
                if decision.method != "ambiguous" or not ranked[position]:
                    continue
                pick = _assignable(
                    position,
                    ranked[position],
                    holders=holders,
                    scores_by_ref=scores_by_ref,
                    decisions=resolved,
                    thresholds=thresholds,
                    own_unit_only=own_unit_only,
                )
                if pick is None:
                    continue
                explained = [
                    f"{item.ref} is row {holders[normalize_ref(item.ref)]}'s"
                    for item in ranked[position]
                    if normalize_ref(item.ref) in holders and _rivals(pick, item, thresholds)
                ]
                resolved[position] = RowMatch(
                    row=decision.row,
                    method="name",
                    submission_ref=pick.ref,
                    score=_display(pick.score),
                    candidates=decision.candidates,
                    evidence=(*pick.evidence, *explained, "decided with the form's other rows"),
                    warnings=pick.warnings,
                )
                holders[normalize_ref(pick.ref)] = decision.row
                progress = True
    return resolved


def _assignable(
    position: int,
    scored: Sequence[_Scored],
    *,
    holders: Mapping[str, int],
    scores_by_ref: Mapping[str, Sequence[tuple[int, float]]],
    decisions: Sequence[RowMatch],
    thresholds: Thresholds,
    own_unit_only: bool,
) -> _Scored | None:
    """The candidate row `position` takes in the assignment, or None (see `_assign`)."""
    free = [item for item in scored if normalize_ref(item.ref) not in holders]
    if not free:
        return None
    best = free[0]
    if own_unit_only and not best.own_unit:
        return None
    if best.score < thresholds.accept or not best.eligible:
        return None
    if any(item.score > best.score for item in scored if normalize_ref(item.ref) in holders):
        return None
    if any(_rivals(best, item, thresholds) for item in free[1:]):
        return None
    for other, score in scores_by_ref.get(best.ref, ()):
        if other == position or decisions[other].submission_ref is not None:
            continue
        if score > best.score - thresholds.margin:
            return None
    return best


def _resolve_claims(decisions: list[RowMatch], held: Mapping[str, int]) -> list[RowMatch]:
    """Let one row keep each submission: a held claim first, then a ref over a name, then
    the higher score, then the earlier row (equal rows describe the same case)."""
    claimants: dict[str, list[int]] = {}
    for position, decision in enumerate(decisions):
        if decision.submission_ref is not None:
            claimants.setdefault(decision.submission_ref, []).append(position)
    resolved = list(decisions)
    for ref, positions in claimants.items():
        holder = held.get(normalize_ref(ref))
        if holder is None and len(positions) < 2:
            continue
        ranked = sorted(
            positions,
            key=lambda position: (decisions[position].method != "ref", -decisions[position].score),
        )
        if holder is None:
            holder = decisions[ranked[0]].row
            ranked = ranked[1:]
        for position in ranked:
            loser = decisions[position]
            resolved[position] = replace(
                loser,
                method="ambiguous",
                submission_ref=None,
                candidates=loser.candidates or ((ref, loser.score),),
                warnings=(
                    *loser.warnings,
                    Problem("ref_claimed", {"ref": ref, "row": holder}),
                ),
            )
    return resolved
