"""Benchmark: match 5,000 form rows against 5,000 synthetic online submissions.

Reproduce from the repository root with:

    .venv/bin/python -m bench.bench_matching [--rows 5000] [--submissions 5000] [--seed 7]

Prints wall time of the index build and of matching, peak traced memory (tracemalloc), how
the rows were decided, recall over the rows that have an unrivalled true submission (floor
0.98), precision, and how many accepted matches were wrong (must be zero). The rows vary as
forms do: spelling, quotes and spaces, applicant suffixes dropped, titles shortened (with
and without a rival case of the same applicant), several cases per applicant.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass

from service.matching import Candidate, RowToMatch, SubmissionIndex

TECHNOLOGIES = (
    "数字孪生+",
    "AI大模型赋能",
    "视觉大模型赋能",
    "基于5G RedCap的",
    "低功耗物联网+",
    "北斗高精度定位赋能",
    "基于边缘计算的",
    "行业大模型赋能",
    "基于NB-IoT的",
    "5G LAN赋能",
    "算力网络赋能",
    "基于区块链的",
    "面向中小企业的",
    "面向工业现场的",
)
SCENES = (
    "智慧港口",
    "智慧校园",
    "智慧矿山",
    "智慧医院",
    "智能电网",
    "智慧养老",
    "低空经济",
    "城市应急",
    "海上风电",
    "钢铁冶炼",
    "智慧仓储",
    "智慧园区",
    "智慧交通",
    "智慧水务",
    "智慧农业",
)
SYSTEMS = (
    "环境监测系统",
    "质量检测系统",
    "应急通信保障系统",
    "精准定位系统",
    "远程运维系统",
    "数据共享平台",
    "视频智能分析平台",
    "综合运营管理系统",
    "资产数字化管理平台",
    "设备预测性维护解决方案",
)
QUALIFIERS = ("（试点）", "（一期）")
TRAILING_WORDS = ("解决方案", "平台", "系统")
CITIES = ("南京", "苏州", "杭州", "宁波", "上海", "合肥", "常州", "无锡", "绍兴", "湖州", "台州")
NAME_CHARACTERS = "景行鼎信宏图星河光启驰骋数智天翼华创博远中科云海金桥瑞达恒通"
INDUSTRIES = ("通信技术", "信息技术", "数据科技", "电子科技", "物联网科技", "医疗")
SUFFIXES = ("有限公司", "股份有限公司", "有限责任公司")
UNITS = ("江苏移动", "浙江电信", "上海市通信行业协会", "安徽联通", "中国铁塔江苏省分公司")
ROWS_PER_FORM = 10
NOT_SUBMITTED_SHARE = 0.1
"""Rows whose applicant has not submitted the case online yet (no true submission)."""
SHORTENED_SHARE = 0.15
"""Rows whose title the unit shortened (a leading 基于…的 / 面向…的, a trailing 平台 / 系统 /
解决方案 / （试点） / （一期） dropped)."""
RIVALLED_SHARE = 0.3
"""Of the shortened rows, those whose applicant has another case with the same short title."""
RIVAL_ON_FORM_SHARE = 0.4
"""Of those, the ones whose rival is a row of the same form (with its full title): the form,
decided as a whole, explains the rival, so the row counts in recall."""


@dataclass(frozen=True)
class Workload:
    """Synthetic submissions and forms, with the ref each row should match (or None).

    `rivalled` holds the rows whose true submission has a real rival (another case of the
    same applicant that the row's shortened title fits as well): they may stay ambiguous,
    and recall is counted over the other rows that have a true submission.
    """

    submissions: list[Candidate]
    forms: list[tuple[str, list[RowToMatch]]]
    expected: dict[tuple[int, int], str | None]  # (form index, row) -> ref
    rivalled: set[tuple[int, int]]


def _vary(text: str, generator: random.Random) -> str:
    """Write a name the way people do: quotes, full-width brackets, spaces."""
    choice = generator.randrange(5)
    if choice == 0:
        return f"《{text}》"
    if choice == 1:
        return f"“{text}” "
    if choice == 2 and len(text) > 4:
        cut = generator.randrange(1, len(text) - 1)
        return text[:cut] + "\u3000" + text[cut:]
    if choice == 3:
        return text.replace("(", "（").replace(")", "）")
    return text


def shorten(title: str) -> str:
    """The title as a unit shortens it: leading 基于…的 / 面向…的 and trailing words dropped."""
    short = title
    for lead in ("基于", "面向"):
        if short.startswith(lead) and "的" in short:
            short = short[short.index("的") + 1 :]
    for qualifier in QUALIFIERS:
        short = short.removesuffix(qualifier)
    for word in TRAILING_WORDS:
        if short.endswith(word):
            short = short.removesuffix(word)
            break
    return short


def _drop_applicant_suffix(applicant: str, generator: random.Random) -> str:
    """The applicant as forms write it: legal form dropped now and then."""
    if generator.random() < 0.3:
        for suffix in SUFFIXES[::-1] if generator.random() < 0.5 else SUFFIXES:
            applicant = applicant.removesuffix(suffix)
    return applicant


def build_workload(rows: int, submissions: int, seed: int) -> Workload:
    """Submissions from templates (so titles look alike), several cases per applicant, and
    rows that vary their spelling, shorten their titles and drop applicant suffixes."""
    generator = random.Random(seed)
    records: list[Candidate] = []
    applicants: list[str] = []

    def add(title: str, applicant: str, recommender: str | None) -> Candidate:
        record = Candidate(
            ref=f"KJCX2025-{len(records) + 1:05d}",
            title=title,
            applicant=applicant,
            recommender=recommender,
            route="voluntary" if recommender is None else "recommended",
        )
        records.append(record)
        return record

    def add_random() -> None:
        if applicants and generator.random() < 0.35:  # several cases per applicant
            applicant = generator.choice(applicants)
        else:
            applicant = (
                generator.choice(CITIES)
                + "".join(generator.sample(NAME_CHARACTERS, 2))
                + generator.choice(INDUSTRIES)
                + generator.choice(SUFFIXES)
            )
            applicants.append(applicant)
        title = (
            generator.choice(TECHNOLOGIES)
            + generator.choice(CITIES)
            + generator.choice(SCENES)
            + generator.choice(SYSTEMS)
            + (generator.choice(QUALIFIERS) if generator.random() < 0.1 else "")
        )
        voluntary = generator.random() < 0.3
        add(title, applicant, None if voluntary else generator.choice(UNITS))

    rivals_expected = int(rows * SHORTENED_SHARE * RIVALLED_SHARE * (1 - NOT_SUBMITTED_SHARE))
    while len(records) < max(submissions - rivals_expected, 1):
        add_random()
    forms: list[tuple[str, list[RowToMatch]]] = []
    expected: dict[tuple[int, int], str | None] = {}
    rivalled: set[tuple[int, int]] = set()
    chosen = generator.sample(records, k=min(round(rows * (1 - NOT_SUBMITTED_SHARE)), len(records)))
    by_unit: dict[str | None, list[Candidate]] = {}
    for record in chosen:  # a unit may recommend a case submitted voluntarily
        by_unit.setdefault(record.recommender or generator.choice(UNITS), []).append(record)
    form_number = 0
    for unit in UNITS:
        pool = by_unit.get(unit, [])
        while pool:
            batch, pool = pool[:ROWS_PER_FORM], pool[ROWS_PER_FORM:]
            form_rows: list[RowToMatch] = []
            for record in batch:
                if generator.random() < NOT_SUBMITTED_SHARE / (1 - NOT_SUBMITTED_SHARE):
                    title = "未提交" + generator.choice(SCENES) + generator.choice(SYSTEMS)
                    form_rows.append(RowToMatch(len(form_rows) + 1, title, record.applicant))
                    expected[(form_number, len(form_rows))] = None
                row_number = len(form_rows) + 1
                key = (form_number, row_number)
                title = record.title
                ref = record.ref if generator.random() < 0.5 else None
                rival: Candidate | None = None
                if shorten(title) != title and generator.random() < SHORTENED_SHARE / 0.6:
                    title, ref = shorten(title), None
                    if generator.random() < RIVALLED_SHARE:
                        rival_title = (
                            generator.choice(("基于边缘计算的", "面向中小企业的")) + title + "平台"
                        )
                        if rival_title != record.title:
                            rival = add(rival_title, record.applicant, record.recommender)
                applicant = _drop_applicant_suffix(record.applicant, generator)
                form_rows.append(
                    RowToMatch(
                        row_number, _vary(title, generator), _vary(applicant, generator), ref
                    )
                )
                expected[key] = record.ref
                if rival is not None and generator.random() < RIVAL_ON_FORM_SHARE:
                    # the rival is on the same form with its full title: it explains itself
                    form_rows.append(
                        RowToMatch(len(form_rows) + 1, _vary(rival.title, generator), applicant)
                    )
                    expected[(form_number, len(form_rows))] = rival.ref
                elif rival is not None:
                    rivalled.add(key)
            forms.append((unit, form_rows))
            form_number += 1
    while len(records) < submissions:
        add_random()
    return Workload(records, forms, expected, rivalled)


@dataclass(frozen=True)
class Run:
    """What one pass over the workload measured."""

    build_seconds: float
    match_seconds: float
    outcomes: Counter[str]
    wrong: int
    linked_unrivalled: int  # rows with an unrivalled true submission, linked to it
    unrivalled: int  # rows with an unrivalled true submission
    linked: int  # rows linked to some submission


def run(workload: Workload) -> Run:
    """Build the index and match every form once."""
    started = time.perf_counter()
    index = SubmissionIndex(workload.submissions)
    built = time.perf_counter()
    outcomes: Counter[str] = Counter()
    wrong = linked = linked_unrivalled = 0
    for form_number, (unit, rows) in enumerate(workload.forms):
        for decision in index.match_rows(rows, unit=unit):
            outcomes[decision.method] += 1
            key = (form_number, decision.row)
            truth = workload.expected[key]
            if decision.submission_ref is not None:
                linked += 1
                if decision.submission_ref != truth:
                    wrong += 1
                elif key not in workload.rivalled:
                    linked_unrivalled += 1
    finished = time.perf_counter()
    unrivalled = sum(
        1
        for key, truth in workload.expected.items()
        if truth is not None and key not in workload.rivalled
    )
    return Run(
        built - started,
        finished - built,
        outcomes,
        wrong,
        linked_unrivalled,
        unrivalled,
        linked,
    )


def main() -> None:
    """Run the benchmark and print its results with the command that reproduces them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--submissions", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    arguments = parser.parse_args()
    workload = build_workload(arguments.rows, arguments.submissions, arguments.seed)

    timed = run(workload)  # tracemalloc slows Python down several times: time untraced
    tracemalloc.start()
    run(workload)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    print(
        "command: .venv/bin/python -m bench.bench_matching "
        f"--rows {arguments.rows} --submissions {arguments.submissions} --seed {arguments.seed}"
    )
    print(f"index build: {timed.build_seconds:.2f} s for {len(workload.submissions)} submissions")
    print(f"matching:    {timed.match_seconds:.2f} s for {sum(timed.outcomes.values())} rows")
    print(f"peak traced memory (second pass): {peak / 1_000_000:.1f} MB")
    decided = ", ".join(f"{name} {count}" for name, count in sorted(timed.outcomes.items()))
    print(f"decisions:   {decided}")
    recall = timed.linked_unrivalled / timed.unrivalled if timed.unrivalled else 1.0
    precision = (timed.linked - timed.wrong) / timed.linked if timed.linked else 1.0
    print(
        f"recall:      {recall:.4f} ({timed.linked_unrivalled} of {timed.unrivalled} rows with "
        "an unrivalled true submission linked to it; floor 0.98)"
    )
    print(f"precision:   {precision:.4f} ({timed.linked} rows linked)")
    print(f"rivalled rows (may stay ambiguous): {len(workload.rivalled)}")
    print(f"wrong matches: {timed.wrong} (floor 0); matching floor: under 5 s")


if __name__ == "__main__":
    main()
