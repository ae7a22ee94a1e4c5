"""Scanned recommendation forms as units really send them, with the truth they were made from.

A form is filled in Word (`mailmaker.form_docx`, given table borders, column widths and
blank rows like the template), printed to PDF by LibreOffice, rasterised at 150–200 dpi,
then aged like a scan: tinted paper, a slight rotation, noise, a red round seal stamped
(multiplied, semi-transparent) over 推荐单位（盖章）, and saved as a JPEG inside a PDF.
Variants: `clean` (200 dpi), `noisy` (150 dpi), `photo` (a phone photo: perspective,
uneven light, mild blur).

LibreOffice is slow, so scans are cached on disk, keyed by the form, the variant and this
file's own source (a change here makes new scans): `scan_cache_dir()`.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import docx
import numpy
import pypdfium2
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Cm
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from config.settings import SAMPLES
from tests.support.mailmaker import Case, Form, form_docx

Variant = Literal["clean", "noisy", "photo"]
SEAL_RED = (205, 28, 36)
SIGNED_ON = date(2025, 7, 20)  # what `form_docx` writes under the seal line
SAMPLE_FORMS = Path("/work/shared/samples/forms")
#: The case table's column widths (cm), like the template: a wide title column.
CASE_COLUMNS_CM = (1.2, 4.4, 4.0, 2.2, 3.0, 1.7)
#: The unit table's: labels wide enough for 推荐单位 / 办公电话 on one line.
UNIT_COLUMNS_CM = (2.4, 3.4, 1.8, 2.6, 2.4, 3.9)
SOFFICE_TIMEOUT_S = 300
_FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"


@dataclass(frozen=True)
class ScanSpec:
    """One scan to make: the form, how it is aged, and its rotation in degrees."""

    form: Form
    variant: Variant
    rotation: float
    unit_cell_merged: bool = True  # False: the name wraps in a narrow cell, as some send it
    sealed: bool = True  # False: printed and scanned, but nobody stamped it

    @property
    def key(self) -> str:
        """The cache key: what is on the form, how it is scanned, and how this file makes it."""
        recipe = Path(__file__).read_bytes()
        return hashlib.sha256(repr(self).encode() + recipe).hexdigest()[:24]


@dataclass(frozen=True)
class Scan:
    """A scanned form PDF and what it truly says."""

    name: str
    pdf: bytes
    unit: str
    titles: tuple[str, ...]
    applicants: tuple[str, ...]
    signed_on: date


SCAN_FORMS: tuple[ScanSpec, ...] = (
    ScanSpec(
        Form(
            "中国联合网络通信有限公司河北省分公司",
            [
                Case("基于大模型的智能客服系统", "联通数字科技有限公司", ref="KJCX2025-0101"),
                Case("5G+智慧工厂（一期）柔性生产线改造项目", "河北钢铁集团有限公司"),
                Case("《县域千兆光网与算力网络协同调度平台》", "联通（河北）产业互联网有限公司"),
                Case("面向雄安新区的城市级物联网感知底座建设与运营", "雄安新区智能城市有限公司"),
                Case("工业互联网标识解析二级节点（钢铁行业）", "唐山钢研数据科技有限公司"),
                Case("基于RedCap的电力配网差动保护通信方案", "国网河北省电力有限公司"),
            ],
        ),
        "clean",
        0.8,
    ),
    ScanSpec(
        Form(
            "山西省通信行业协会",
            [
                Case("煤矿井下5G专网", "晋能控股装备制造集团有限公司"),
                Case("矿山智能巡检机器人与边缘AI视觉识别系统", "太原理工智能装备有限公司"),
                Case("“晋数通”政务数据共享交换平台", "山西数字政府建设运营有限公司"),
                Case("基于北斗高精度定位的重载铁路安全监测系统", "大秦铁路股份有限公司"),
                Case("焦化行业碳排放在线监测与数字化管理平台", "山西焦化集团有限公司"),
                Case("智慧供热管网漏损预警系统", "太原市热力集团有限责任公司"),
            ],
        ),
        "noisy",
        -1.2,
    ),
    ScanSpec(
        Form(
            "江西省通信行业协会",
            [
                Case("赣江流域物联网水质监测", "江西水投科技有限公司"),
                Case("稀土产业链工业互联网平台（二期）", "赣州稀土集团有限公司"),
                Case("基于数字孪生的瓷都文旅沉浸式体验系统", "景德镇文旅数字科技有限公司"),
                Case("红色教育资源云展厅", "井冈山红色文化传播有限公司"),
                Case("农村电商直播带货5G融合应用", "江西赣农电子商务有限公司"),
            ],
        ),
        "photo",
        1.0,
    ),
    ScanSpec(
        Form(
            "广东省通信行业协会",
            [
                Case("边缘计算视频分析平台", "广州视联科技有限公司"),
                Case("粤港澳大湾区跨境数据安全流通试验平台", "深圳数据交易所有限公司"),
                Case("面向家电制造的AI质检与柔性排产一体化解决方案", "佛山美智制造科技有限公司"),
                Case("《港口集装箱无人集卡5G远程驾驶系统》", "广州港数据科技有限公司"),
                Case("基于SRv6的政企专线智能运维平台", "中国电信股份有限公司广东分公司"),
            ],
        ),
        "clean",
        -0.6,
    ),
    ScanSpec(
        Form(
            "中国移动通信集团四川有限公司",
            [
                Case("县域数字乡村云平台", "四川蜀云科技有限公司"),
                Case("川藏铁路沿线应急通信保障体系", "中国移动通信集团四川有限公司林芝分公司"),
                Case("大熊猫国家公园生态监测物联网", "四川省林业和草原调查规划院"),
                Case("基于算力网络的影视渲染云服务", "成都天府影视云科技有限公司"),
                Case("白酒酿造全流程数字化管控平台", "宜宾五粮数字科技有限公司"),
                Case("5G+智慧医疗急救车载协同系统（二期）", "四川大学华西医院"),
            ],
        ),
        "noisy",
        1.4,
    ),
    ScanSpec(
        Form(
            "中国铁塔股份有限公司湖北省分公司",
            [
                Case("铁塔视联森林防火智能监测平台", "铁塔智联技术有限公司"),
                Case("长江航道视频监控与船舶识别AI系统", "长江航道局信息中心"),
                Case("基于通信塔的低空无人机起降与巡检服务网络", "武汉飞羽低空科技有限公司"),
                Case("光谷科创园区综合能源管理平台", "武汉光谷能源服务有限公司"),
                Case("城市内涝积水点物联网监测预警系统", "武汉市水务集团有限公司"),
            ],
        ),
        "photo",
        -0.9,
        unit_cell_merged=False,
    ),
    ScanSpec(
        Form(
            "北京市通信行业协会",
            [
                Case("北京冬奥场馆5G+8K超高清直播技术服务", "北京歌华有线电视网络股份有限公司"),
                Case("基于隐私计算的医疗数据融合分析平台", "北京医渡云数据技术有限公司"),
                Case("中关村科学城算力调度与交易服务平台", "北京中关村算力科技有限公司"),
                Case("《地铁隧道结构健康AI监测系统》", "北京市轨道交通建设管理有限公司"),
                Case("政务外网IPv6+升级改造与安全防护", "北京市大数据中心"),
            ],
        ),
        "clean",
        1.2,
    ),
)


def scan_cache_dir() -> Path:
    """Where made scans are kept between test runs (`INTAKE_SCAN_CACHE` overrides)."""
    configured = os.environ.get("INTAKE_SCAN_CACHE")
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "intake-scans"


def scans(specs: Sequence[ScanSpec] = SCAN_FORMS, cache: Path | None = None) -> list[Scan]:
    """The scans of `specs`, from the cache or made now (one LibreOffice run for all)."""
    directory = cache or scan_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    missing = [spec for spec in specs if not (directory / f"{spec.key}.pdf").exists()]
    if missing:
        printed = print_to_pdf(
            [
                sealed_form_docx(spec.form, unit_cell_merged=spec.unit_cell_merged)
                for spec in missing
            ]
        )
        for spec, pdf in zip(missing, printed, strict=True):
            scanned = age_as_scan(pdf, spec)
            partial = directory / f"{spec.key}.{os.getpid()}.part"
            partial.write_bytes(scanned)
            partial.replace(directory / f"{spec.key}.pdf")  # atomic: parallel runs agree
    return [
        Scan(
            name=f"{spec.form.unit}-{spec.variant}",
            pdf=(directory / f"{spec.key}.pdf").read_bytes(),
            unit=spec.form.unit,
            titles=tuple(case.title for case in spec.form.cases),
            applicants=tuple(case.applicant for case in spec.form.cases),
            signed_on=SIGNED_ON,
        )
        for spec in specs
    ]


def sealed_form_docx(form: Form, *, blank_rows: int = 2, unit_cell_merged: bool = True) -> bytes:
    """`form_docx` dressed like the template: A4, ruled tables, a wide title column, the
    unit's name across its row, blank rows after the cases, the signature block on the right."""
    document = docx.Document(io.BytesIO(form_docx(form)))
    section = document.sections[0]
    section.page_width, section.page_height = Cm(21.0), Cm(29.7)
    section.left_margin = section.right_margin = Cm(2.2)
    section.top_margin = section.bottom_margin = Cm(2.5)
    unit_table, case_table = document.tables[0], document.tables[1]
    for table in (unit_table, case_table):
        table.style = document.styles["Table Grid"]
        table.alignment = WD_TABLE_ALIGNMENT.CENTER
        table.autofit = False
    if unit_cell_merged:
        first_row = unit_table.rows[0].cells
        name = first_row[1].text
        merged = first_row[1].merge(first_row[-1])
        merged.text = name
    for _ in range(blank_rows):
        case_table.add_row()
    for table, widths in ((unit_table, UNIT_COLUMNS_CM), (case_table, CASE_COLUMNS_CM)):
        for column, width in zip(table.columns, widths, strict=False):
            column.width = Cm(width)
        for row in table.rows:
            for cell, width in zip(row.cells, widths, strict=False):
                cell.width = Cm(width)
    for paragraph in document.paragraphs:
        if paragraph.text.startswith("推荐单位") or "年7月" in paragraph.text:
            paragraph.alignment = WD_ALIGN_PARAGRAPH.RIGHT
        if paragraph.text.endswith("推荐表"):
            paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def print_to_pdf(documents: Sequence[bytes]) -> list[bytes]:
    """Word documents printed to PDF by one headless LibreOffice run, with a private profile
    so that parallel runs do not collide."""
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        raise RuntimeError("LibreOffice (soffice) is needed to make scans")
    with tempfile.TemporaryDirectory(prefix="intake-scan-") as workdir:
        folder = Path(workdir)
        sources = []
        for number, data in enumerate(documents):
            source = folder / f"form{number}.docx"
            source.write_bytes(data)
            sources.append(source)
        subprocess.run(
            [
                office,
                f"-env:UserInstallation=file://{folder}/profile",
                "--headless",
                "--norestore",
                "--convert-to",
                "pdf",
                "--outdir",
                str(folder),
                *map(str, sources),
            ],
            check=True,
            capture_output=True,
            timeout=SOFFICE_TIMEOUT_S,
        )
        return [source.with_suffix(".pdf").read_bytes() for source in sources]


def age_as_scan(pdf: bytes, spec: ScanSpec) -> bytes:
    """The printed form as a scanner (or a phone) gives it back: one JPEG per page in a PDF."""
    dpi = 150 if spec.variant == "noisy" else 200
    document = pypdfium2.PdfDocument(pdf)
    pages = []
    try:
        for index in range(len(document)):
            page = document[index]
            image = page.render(scale=dpi / 72).to_pil().convert("RGB")
            spot = _label_centre(page, "推荐单位（盖章）", dpi / 72)
            if spot is not None and spec.sealed:
                image = stamp_seal(image, spot, spec.form.unit, dpi)
            pages.append(_age(image, spec, seed=index))
            page.close()
    finally:
        document.close()
    buffer = io.BytesIO()
    quality = {"clean": 80, "noisy": 60, "photo": 70}[spec.variant]
    pages[0].save(
        buffer,
        format="PDF",
        resolution=dpi,
        save_all=True,
        append_images=pages[1:],
        quality=quality,
    )
    return buffer.getvalue()


def _label_centre(page: pypdfium2.PdfPage, label: str, scale: float) -> tuple[float, float] | None:
    """Where `label` is printed on a page with a text layer, in pixels at `scale`."""
    text_page = page.get_textpage()
    try:
        searcher = text_page.search(label)
        found = searcher.get_next()
        if not found:
            return None
        first, count = found
        boxes = [text_page.get_charbox(first + offset) for offset in range(count)]
    finally:
        text_page.close()
    height = page.get_height()
    left = min(box[0] for box in boxes)
    right = max(box[2] for box in boxes)
    bottom = min(box[1] for box in boxes)
    top = max(box[3] for box in boxes)
    return (left + right) / 2 * scale, (height - (bottom + top) / 2) * scale


def stamp_seal(page: Image.Image, centre: tuple[float, float], unit: str, dpi: int) -> Image.Image:
    """A red round seal (ring, star, the unit's name along the rim) pressed onto the page
    a little right of and below `centre`: the ink multiplies, so text under it stays."""
    radius = round(2.1 / 2.54 * dpi)  # a 4.2 cm seal
    size = 2 * radius + 8
    seal = Image.new("L", (size, size), 0)  # ink coverage
    draw = ImageDraw.Draw(seal)
    middle = size / 2
    ring = max(3, round(radius * 0.06))
    draw.ellipse((4, 4, size - 4, size - 4), outline=255, width=ring)
    star = []
    for point in range(10):
        reach = radius * (0.3 if point % 2 == 0 else 0.12)
        angle = math.radians(-90 + 36 * point)
        star.append((middle + reach * math.cos(angle), middle + reach * math.sin(angle)))
    draw.polygon(star, fill=255)
    font = ImageFont.truetype(_FONT, max(10, round(radius * 0.2)))
    letters = unit[:18]
    spread = math.radians(240)
    for number, letter in enumerate(letters):
        angle = math.radians(-210) + spread * (number + 0.5) / len(letters)
        glyph = Image.new("L", (font.size * 2, font.size * 2), 0)
        ImageDraw.Draw(glyph).text((font.size / 2, font.size / 2), letter, fill=255, font=font)
        glyph = glyph.rotate(-math.degrees(angle) - 90, resample=Image.Resampling.BICUBIC)
        distance = radius * 0.72
        x = middle + distance * math.cos(angle) - glyph.width / 2
        y = middle + distance * math.sin(angle) - glyph.height / 2
        seal.paste(255, (round(x), round(y)), glyph)
    seal = seal.point(lambda value: round(value * 0.82))  # worn, uneven ink
    ink = Image.new("RGB", seal.size, SEAL_RED)
    paper = Image.new("RGB", seal.size, (255, 255, 255))
    colour = Image.composite(ink, paper, seal)
    left = round(centre[0] - size / 2 + 0.35 * radius)
    top = round(centre[1] - size / 2 + 0.25 * radius)
    stamped = page.copy()
    region = (left, top, left + size, top + size)
    under = numpy.asarray(stamped.crop(region), dtype=numpy.float32)
    pressed = under * numpy.asarray(colour, dtype=numpy.float32) / 255.0
    stamped.paste(Image.fromarray(pressed.astype(numpy.uint8)), region[:2])
    return stamped


def _age(page: Image.Image, spec: ScanSpec, *, seed: int) -> Image.Image:
    """Tinted paper, a slight rotation, sensor noise; for `photo` also perspective, uneven
    light and a mild blur."""
    generator = numpy.random.default_rng(seed + len(spec.form.unit))
    paper = (246, 242, 230) if spec.variant != "photo" else (238, 234, 226)
    tinted = numpy.asarray(page, dtype=numpy.float32) * numpy.array(paper) / 255.0
    aged = Image.fromarray(tinted.clip(0, 255).astype(numpy.uint8))
    aged = aged.rotate(
        spec.rotation, resample=Image.Resampling.BICUBIC, expand=False, fillcolor=paper
    )
    if spec.variant == "photo":
        width, height = aged.size
        aged = aged.transform(
            aged.size,
            Image.Transform.PERSPECTIVE,
            _perspective(width, height, 0.018),
            resample=Image.Resampling.BICUBIC,
            fillcolor=(90, 88, 84),
        )
        light = numpy.linspace(1.0, 0.78, height)[:, None] * numpy.linspace(0.92, 1.0, width)
        lit = numpy.asarray(aged, dtype=numpy.float32) * light[:, :, None]
        aged = Image.fromarray(lit.clip(0, 255).astype(numpy.uint8))
        aged = aged.filter(ImageFilter.GaussianBlur(0.9))
    strength = {"clean": 4.0, "noisy": 11.0, "photo": 7.0}[spec.variant]
    noise = generator.normal(0.0, strength, (aged.height, aged.width, 1))
    noisy = numpy.asarray(aged, dtype=numpy.float32) + noise
    return Image.fromarray(noisy.clip(0, 255).astype(numpy.uint8))


def _perspective(width: int, height: int, amount: float) -> tuple[float, ...]:
    """Coefficients of a keystone (the top edge a little narrower, as a phone held at a tilt)."""
    inset = width * amount
    source = [(inset, 0), (width - inset, height * amount), (width, height), (0, height)]
    target = [(0, 0), (width, 0), (width, height), (0, height)]
    matrix = []
    for (x, y), (u, v) in zip(target, source, strict=True):
        matrix.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        matrix.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    solution = numpy.linalg.solve(
        numpy.array(matrix, dtype=float),
        numpy.array([value for point in source for value in point], dtype=float),
    )
    return tuple(float(value) for value in solution)


# --- the real sample scans --------------------------------------------------------------------

#: The image-only sealed scans among the samples, by the unit's short name in the file name.
SAMPLE_SCANS = ("浙江电信", "上海市通信行业协会")


def sample_scans() -> list[tuple[str, bytes, bytes]]:
    """(name, scanned PDF, Word form) of each sample scan: from the shared sample folder,
    else from the attachments of the repository's sample mailbox; empty when neither is here."""
    found = []
    for name in SAMPLE_SCANS:
        pdf = SAMPLE_FORMS / f"{name}-推荐表（盖章）.pdf"
        word = SAMPLE_FORMS / f"{name}-推荐表.docx"
        if pdf.is_file() and word.is_file():
            found.append((name, pdf.read_bytes(), word.read_bytes()))
    if found:
        return found
    attachments = _sample_mail_attachments()
    for name in SAMPLE_SCANS:
        pdf_bytes = attachments.get(f"{name}-推荐表（盖章）.pdf")
        word_bytes = attachments.get(f"{name}-推荐表.docx")
        if pdf_bytes and word_bytes:
            found.append((name, pdf_bytes, word_bytes))
    return found


def _sample_mail_attachments() -> dict[str, bytes]:
    attachments: dict[str, bytes] = {}
    for path in sorted((SAMPLES / "mailbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for part in message.walk():
            filename = part.get_filename()
            payload = part.get_payload(decode=True)
            if filename and isinstance(payload, bytes):
                attachments[filename] = payload
    return attachments
