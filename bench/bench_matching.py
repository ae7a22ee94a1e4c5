"""Benchmark: match 5,000 form rows against 5,000 synthetic online submissions.

Reproduce from the repository root with:

    .venv/bin/python -m bench.bench_matching [--rows 5000] [--submissions 5000] [--seed 7]

Prints wall time of the index build and of matching, peak traced memory (tracemalloc), how
the rows were decided, and how many accepted matches were wrong (must be zero).
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
CITIES = ("南京", "苏州", "杭州", "宁波", "上海", "合肥", "常州", "无锡", "绍兴", "湖州", "台州")
NAME_CHARACTERS = "景行鼎信宏图星河光启驰骋数智天翼华创博远中科云海金桥瑞达恒通"
INDUSTRIES = ("通信技术", "信息技术", "数据科技", "电子科技", "物联网科技", "医疗")
SUFFIXES = ("有限公司", "股份有限公司", "有限责任公司")
UNITS = ("江苏移动", "浙江电信", "上海市通信行业协会", "安徽联通", "中国铁塔江苏省分公司")


@dataclass(frozen=True)
class Workload:
    """Synthetic submissions and forms, with the ref each row should match (or None)."""

    submissions: list[Candidate]
    forms: list[tuple[str, list[RowToMatch]]]
    expected: dict[tuple[int, int], str | None]  # (form index, row) -> ref


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


def build_workload(rows: int, submissions: int, seed: int) -> Workload:
    """Submissions from templates (so titles look alike) and rows that vary their spelling."""
    generator = random.Random(seed)
    records: list[Candidate] = []
    for number in range(1, submissions + 1):
        title = (
            generator.choice(TECHNOLOGIES)
            + generator.choice(CITIES)
            + generator.choice(SCENES)
            + generator.choice(SYSTEMS)
        )
        applicant = (
            generator.choice(CITIES)
            + "".join(generator.sample(NAME_CHARACTERS, 2))
            + generator.choice(INDUSTRIES)
            + generator.choice(SUFFIXES)
        )
        voluntary = generator.random() < 0.3
        records.append(
            Candidate(
                ref=f"KJCX2025-{number:05d}",
                title=title,
                applicant=applicant,
                recommender=None if voluntary else generator.choice(UNITS),
                route="voluntary" if voluntary else "recommended",
            )
        )
    forms: list[tuple[str, list[RowToMatch]]] = []
    expected: dict[tuple[int, int], str | None] = {}
    chosen = generator.sample(records, k=min(rows, len(records)))
    for form_number, first in enumerate(range(0, len(chosen), 10)):
        unit = generator.choice(UNITS)
        form_rows: list[RowToMatch] = []
        for row_number, record in enumerate(chosen[first : first + 10], start=1):
            if generator.random() < 0.1:  # not submitted online yet
                title = "未提交" + generator.choice(SCENES) + generator.choice(SYSTEMS)
                form_rows.append(RowToMatch(row_number, title, record.applicant, None))
                expected[(form_number, row_number)] = None
                continue
            applicant = record.applicant
            if generator.random() < 0.3:
                applicant = applicant.removesuffix("股份有限公司").removesuffix("有限公司")
            ref = record.ref if generator.random() < 0.5 else None
            form_rows.append(
                RowToMatch(
                    row_number, _vary(record.title, generator), _vary(applicant, generator), ref
                )
            )
            expected[(form_number, row_number)] = record.ref
        forms.append((unit, form_rows))
    return Workload(records, forms, expected)


@dataclass(frozen=True)
class Run:
    """What one pass over the workload measured."""

    build_seconds: float
    match_seconds: float
    outcomes: Counter[str]
    wrong: int


def run(workload: Workload) -> Run:
    """Build the index and match every form once."""
    started = time.perf_counter()
    index = SubmissionIndex(workload.submissions)
    built = time.perf_counter()
    outcomes: Counter[str] = Counter()
    wrong = 0
    for form_number, (unit, rows) in enumerate(workload.forms):
        for decision in index.match_rows(rows, unit=unit):
            outcomes[decision.method] += 1
            truth = workload.expected[(form_number, decision.row)]
            if decision.submission_ref is not None and decision.submission_ref != truth:
                wrong += 1
    return Run(built - started, time.perf_counter() - built, outcomes, wrong)


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
    print(f"wrong matches: {timed.wrong}")


if __name__ == "__main__":
    main()
