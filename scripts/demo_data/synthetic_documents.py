"""Render synthetic Russian documents with Pillow and label them in the task CSV format.

Five classes (passport spread, SNILS card, invoice, driver's licence, vehicle
registration certificate), two layouts each, several fonts, tinted and patterned
backgrounds, stamps, jitter, and three difficulty levels (clean / scanned /
photographed). Every answer's bbox is tracked through the geometric degradation.
Deterministic: the same seed gives byte-identical files (with the same Pillow and fonts).
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from scripts.demo_data import russian_fake_values as fake

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
             "/usr/share/fonts/truetype/freefont")
SANS = ["DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf"]
SERIF = ["DejaVuSerif.ttf", "LiberationSerif-Regular.ttf", "FreeSerif.ttf"]
BOLD = ["DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "FreeSansBold.ttf"]
MONO = ["DejaVuSansMono.ttf", "LiberationMono-Regular.ttf", "FreeMono.ttf"]
DIFFICULTIES = ("clean", "scanned", "photographed")

QUESTIONS: dict[str, list[str]] = {
    "Фамилия": ["Какая фамилия владельца документа?", "Укажите фамилию.", "Фамилия?", "Как фамилия человека в документе?"],
    "Имя": ["Какое имя владельца паспорта?", "Укажите имя.", "Имя владельца?"],
    "Отчество": ["Какое отчество владельца паспорта?", "Укажите отчество.", "Отчество?"],
    "Пол": ["Какой пол указан в паспорте?", "Пол владельца?"],
    "Дата рождения": ["Какая дата рождения?", "Когда родился владелец паспорта?", "Дата рождения?"],
    "Место рождения": ["Где родился владелец паспорта?", "Укажите место рождения.", "Место рождения?"],
    "Серия и номер": ["Какие серия и номер паспорта?", "Номер паспорта?", "Укажите серию и номер паспорта."],
    "Кем выдан": ["Кем выдан паспорт?", "Какой орган выдал паспорт?", "Укажите, кем выдан документ."],
    "Дата выдачи": ["Когда выдан документ?", "Дата выдачи?", "Какая дата выдачи указана?"],
    "Код подразделения": ["Какой код подразделения?", "Код подразделения?", "Укажите код подразделения."],
    "Номер СНИЛС": ["Какой номер СНИЛС?", "Укажите страховой номер.", "Номер страхового свидетельства?"],
    "Дата регистрации": ["Какая дата регистрации?", "Когда зарегистрировано лицо в системе?", "Дата регистрации?"],
    "Номер счёта": ["Какой номер счёта?", "Номер счёта на оплату?", "Укажите номер счёта."],
    "Дата счёта": ["Какая дата счёта?", "От какого числа счёт?", "Дата счёта на оплату?"],
    "Поставщик": ["Кто поставщик?", "Какая организация выставила счёт?", "Название поставщика?"],
    "ИНН поставщика": ["Какой ИНН поставщика?", "ИНН продавца?", "Укажите ИНН поставщика."],
    "КПП поставщика": ["Какой КПП поставщика?", "КПП продавца?"],
    "Сумма": ["Какая итоговая сумма?", "Сколько всего к оплате?", "Итоговая сумма счёта?"],
    "НДС": ["Какая сумма НДС?", "Сколько НДС в счёте?", "Сумма НДС?"],
    "Номер удостоверения": ["Какой номер водительского удостоверения?", "Номер удостоверения?", "Укажите серию и номер ВУ."],
    "Действительно до": ["До какой даты действительно удостоверение?", "Срок действия?", "Действительно до?"],
    "Категории": ["Какие категории открыты?", "Категории транспортных средств?", "Укажите разрешённые категории."],
    "Регистрационный знак": ["Какой регистрационный знак?", "Госномер автомобиля?", "Номер машины?"],
    "VIN": ["Какой VIN?", "Идентификационный номер (VIN)?", "Укажите VIN автомобиля."],
    "Марка модель": ["Какая марка и модель?", "Марка, модель автомобиля?", "Какой автомобиль указан?"],
    "Год выпуска": ["Какой год выпуска?", "Год выпуска ТС?", "В каком году выпущен автомобиль?"],
    "Цвет": ["Какой цвет автомобиля?", "Цвет ТС?", "Укажите цвет."],
}


def font_path(name: str) -> str:
    for folder in FONT_DIRS:
        path = Path(folder) / name
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f"font {name} not found in {FONT_DIRS}: install fonts-dejavu-core fonts-liberation fonts-freefont-ttf")


@dataclass
class Labelled:
    question_type: str
    value: str
    bbox: tuple[int, int, int, int]


@dataclass
class Page:
    """A canvas that remembers where each answer was drawn."""

    image: Image.Image
    rng: random.Random
    fields: list[Labelled] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.draw = ImageDraw.Draw(self.image)

    def font(self, names: list[str], size: int) -> ImageFont.FreeTypeFont:
        return ImageFont.truetype(font_path(self.rng.choice(names)), size)

    def text(self, xy, text, font, fill=(20, 20, 25)) -> tuple[int, int, int, int]:
        self.draw.text(xy, text, font=font, fill=fill)
        return tuple(int(v) for v in self.draw.textbbox(xy, text, font=font))

    def answer(self, question_type: str, value: str, bboxes: list[tuple[int, int, int, int]]) -> None:
        x1 = min(b[0] for b in bboxes)
        y1 = min(b[1] for b in bboxes)
        x2 = max(b[2] for b in bboxes)
        y2 = max(b[3] for b in bboxes)
        self.fields.append(Labelled(question_type, value, (x1, y1, x2, y2)))

    def field(self, question_type, label, value, x, y, label_font, value_font, layout, width=520, answer=True):
        """Label + value; layout "inline" (label left) or "stacked" (label above).

        Returns the y below the block. Long values wrap; the answer is the joined text.
        """
        jx, jy = self.rng.randint(-6, 6), self.rng.randint(-3, 3)
        x, y = x + jx, y + jy
        if layout == "inline":
            lb = self.text((x, y + 2), label, label_font, fill=(90, 90, 100))
            vx, vy = lb[2] + 14, y
        else:
            lb = self.text((x, y), label, label_font, fill=(90, 90, 100))
            vx, vy = x + 10, lb[3] + 4
        lines = wrap(value, value_font, width - (vx - x))
        boxes = []
        for line in lines:
            box = self.text((vx, vy), line, value_font)
            boxes.append(box)
            vy = box[3] + 6
        if answer:
            self.answer(question_type, " ".join(lines), boxes)
        return max(vy, lb[3]) + 10

    def vertical_red(self, question_type, value, x, y, size):
        """Red text rotated 90 degrees (the passport's series and number)."""
        font = self.font(MONO[:2], size)
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        l, t, r, b = probe.textbbox((0, 0), value, font=font)
        mask = Image.new("L", (r + 4, b + 4), 0)
        ImageDraw.Draw(mask).text((2, 2), value, font=font, fill=255)
        mask = mask.rotate(90, expand=True)
        self.image.paste((185, 25, 30), (x, y), mask)
        mx1, my1, mx2, my2 = mask.getbbox()
        self.answer(question_type, value, [(x + mx1, y + my1, x + mx2, y + my2)])


def wrap(text: str, font, width: int) -> list[str]:
    words, lines, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if font.getlength(trial) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return lines + [line] if line else lines


def background(size, rng: random.Random, tint) -> Image.Image:
    """Tinted paper with guilloche-like sine lines and a faint grid."""
    w, h = size
    img = Image.new("RGB", size, tint)
    draw = ImageDraw.Draw(img)
    line = tuple(max(0, c - 28) for c in tint)
    for _ in range(rng.randint(6, 12)):
        amp, period, phase, y0 = rng.uniform(8, 30), rng.uniform(80, 260), rng.uniform(0, 6.3), rng.uniform(0, h)
        pts = [(x, y0 + amp * math.sin(x / period * 6.283 + phase)) for x in range(0, w + 8, 8)]
        draw.line(pts, fill=line, width=1)
    if rng.random() < 0.5:
        grid = tuple(max(0, c - 14) for c in tint)
        step = rng.choice([24, 32, 40])
        for x in range(0, w, step):
            draw.line([(x, 0), (x, h)], fill=grid)
        for y in range(0, h, step):
            draw.line([(0, y), (w, y)], fill=grid)
    return img


def stamp(page: Page, cx: int, cy: int, text: str) -> None:
    """A round blue stamp, drawn semi-transparently over whatever is below."""
    r = page.rng.randint(55, 75)
    layer = Image.new("RGBA", page.image.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    colour = (40, 60, 170, 150)
    d.ellipse((cx - r, cy - r, cx + r, cy + r), outline=colour, width=3)
    d.ellipse((cx - r + 9, cy - r + 9, cx + r - 9, cy + r - 9), outline=colour, width=2)
    font = ImageFont.truetype(font_path("DejaVuSans-Bold.ttf"), 13)
    for i, word in enumerate(text.split()[:3]):
        w = d.textlength(word, font=font)
        d.text((cx - w / 2, cy - 22 + i * 16), word, font=font, fill=colour)
    page.image.paste(Image.alpha_composite(page.image.convert("RGBA"), layer).convert("RGB"))
    page.draw = ImageDraw.Draw(page.image)


# ---------------------------------------------------------------- documents
def render_passport(rng: random.Random) -> tuple[Page, str]:
    p = fake.person(rng)
    city, region_dative, region_code = rng.choice(fake.CITIES)
    series = f"{region_code[:2]} {rng.randint(0, 24):02d}"
    number = f"{series} {rng.randint(100000, 999999)}"
    issued = fake.date(rng, 2005, 2024)
    unit = f"{region_code}0-{rng.randint(1, 99):03d}"
    issuer = rng.choice(["ГУ МВД РОССИИ ПО", "УМВД РОССИИ ПО", "ОТДЕЛОМ УФМС РОССИИ ПО"]) + " " + region_dative.upper()
    layout = rng.choice(["inline", "stacked"])
    page = Page(background((900, 1240), rng, (rng.randint(236, 248), rng.randint(222, 236), rng.randint(214, 228))), rng)
    d = page.draw
    d.line([(30, 620), (870, 620)], fill=(150, 140, 150), width=2)  # the fold between the two pages
    title = page.font(BOLD, 22)
    lab, val = page.font(SANS, 17), page.font(SERIF if rng.random() < 0.5 else SANS, 25)
    page.text((270, 40), "РОССИЙСКАЯ ФЕДЕРАЦИЯ", title, fill=(120, 40, 40))
    y = page.field("Кем выдан", "Паспорт выдан", issuer, 60, 110, lab, val, "stacked", width=690)
    y = page.field("Дата выдачи", "Дата выдачи", issued, 60, y + 20, lab, val, layout, width=330)
    page.field("Код подразделения", "Код подразделения", unit, 420, y - 55 if layout == "inline" else y - 72, lab, val, layout, width=330)
    page.text((60, 520), "Личная подпись", lab, fill=(90, 90, 100))
    stamp(page, rng.randint(520, 640), rng.randint(470, 540), "МВД РОССИИ " + region_code)
    # lower page: photo box, personal data
    d.rectangle((50, 700, 260, 960), outline=(120, 120, 130), width=2)
    page.text((110, 820), "ФОТО", lab, fill=(150, 150, 160))
    x0, y = 300, 680
    for qt, label, value in [("Фамилия", "Фамилия", p.surname.upper()), ("Имя", "Имя", p.name.upper()),
                             ("Отчество", "Отчество", p.patronymic.upper()), ("Пол", "Пол", p.sex),
                             ("Дата рождения", "Дата рождения", p.birth_date),
                             ("Место рождения", "Место рождения", p.birth_place.upper())]:
        y = page.field(qt, label, value, x0, y, lab, val, layout, width=480)
    # MRZ: uppercase Latin transliteration as on real passports (not asked about)
    mono = page.font(MONO[:1], 22)
    page.text((40, 1150), f"PNRUS{translit(p.surname)}<<{translit(p.name)}<{translit(p.patronymic)}".ljust(44, "<")[:44], mono)
    page.text((40, 1185), f"{number.replace(' ', '')[:9]}<0RUS{p.birth_date[8:]}{p.birth_date[3:5]}{p.birth_date[:2]}".ljust(44, "<")[:44], mono)
    for yy in (150, 760):  # series and number, red and vertical, on both pages
        page.vertical_red("Серия и номер" if yy == 760 else "", number, 840, yy, 26)
    page.fields = [f for f in page.fields if f.question_type]
    return page, "Паспорт"


_TRANSLIT = dict(zip("АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
                     ["A", "B", "V", "G", "D", "E", "E", "ZH", "Z", "I", "I", "K", "L", "M", "N", "O", "P", "R", "S",
                      "T", "U", "F", "KH", "TS", "CH", "SH", "SHCH", "", "Y", "", "E", "IU", "IA"]))


def translit(text: str) -> str:
    return "".join(_TRANSLIT.get(c, c) for c in text.upper())


def render_snils(rng: random.Random) -> tuple[Page, str]:
    p = fake.person(rng)
    number = fake.snils(rng)
    registered = fake.date(rng, 1997, 2023)
    layout = rng.choice(["inline", "stacked"])
    page = Page(background((880, 560), rng, (rng.randint(205, 222), rng.randint(232, 244), rng.randint(205, 220))), rng)
    title, lab, val = page.font(BOLD, 19), page.font(SANS, 16), page.font(SANS + SERIF, 24)
    page.text((60, 24), "СТРАХОВОЕ СВИДЕТЕЛЬСТВО", title, fill=(30, 90, 50))
    page.text((60, 50), "ОБЯЗАТЕЛЬНОГО ПЕНСИОННОГО СТРАХОВАНИЯ", title, fill=(30, 90, 50))
    y = page.field("Номер СНИЛС", "№", number, 60, 100, lab, page.font(BOLD, 30), "inline", width=600)
    y = page.field("Фамилия", "Ф.И.О.", p.surname, 60, y + 6, lab, val, layout, width=600)
    y = page.field("", "", f"{p.name} {p.patronymic}", 60, y - 4, lab, val, "inline", width=600, answer=False)
    y = page.field("", "Дата и место рождения", f"{p.birth_date} {p.birth_place}", 60, y, lab, val, "stacked", width=740, answer=False)
    y = page.field("", "Пол", "мужской" if p.sex == "МУЖ." else "женский", 60, y, lab, val, "inline", answer=False)
    page.field("Дата регистрации", "Дата регистрации", registered, 60, y, lab, val, layout, width=500)
    return page, "СНИЛС"


def render_invoice(rng: random.Random) -> tuple[Page, str]:
    city, _, region = rng.choice(fake.CITIES)
    kind = rng.choice(fake.COMPANY_KINDS[:3])
    seller = f'{kind} "{rng.choice(fake.COMPANY_WORDS)}"'
    buyer = f'{rng.choice(fake.COMPANY_KINDS[:3])} "{rng.choice(fake.COMPANY_WORDS)}"'
    inn, kpp = fake.inn(rng, region), fake.kpp(rng, region)
    number = str(rng.randint(1, 2999))
    day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(2021, 2025)
    months = ["января", "февраля", "марта", "апреля", "мая", "июня", "июля", "августа", "сентября", "октября",
              "ноября", "декабря"]
    date_text = f"{day:02d}.{month:02d}.{year}" if rng.random() < 0.5 else f"{day} {months[month - 1]} {year} г."
    items = [(rng.choice(["Бумага офисная А4", "Картридж лазерный", "Монитор 24\"", "Услуги доставки",
                          "Кресло офисное", "Клавиатура", "Консультационные услуги", "Кабель UTP 5e, м"]),
              rng.randint(1, 20), rng.randint(150, 25000)) for _ in range(rng.randint(2, 4))]
    total = sum(q * price for _, q, price in items)
    vat = round(total * 20 / 120, 2)
    page = Page(background((1000, 960), rng, (rng.randint(246, 252),) * 3), rng)
    d = page.draw
    lab, val, small = page.font(SANS, 17), page.font(SANS + SERIF, 20), page.font(SANS, 15)
    bold = page.font(BOLD, 24)
    layout = rng.choice(["inline", "stacked"])
    page.text((40, 30), f"{rng.choice(['ПАО СБЕРБАНК', 'АО «АЛЬФА-БАНК»', 'Банк ВТБ (ПАО)'])} {city}", small)
    page.text((40, 55), f"БИК 04{rng.randint(1000000, 9999999)}   Сч. № 30101810{rng.randint(100000000000, 999999999999)}", small)
    d.rectangle((35, 25, 965, 85), outline=(60, 60, 60))
    head = page.text((40, 110), "Счёт на оплату № ", bold)
    num_box = page.text((head[2], 110), number, bold)
    page.answer("Номер счёта", number, [num_box])
    ot = page.text((num_box[2] + 8, 110), "от", bold)
    page.answer("Дата счёта", date_text, [page.text((ot[2] + 10, 110), date_text, bold)])
    d.line([(40, 150), (960, 150)], fill=(30, 30, 30), width=2)
    y = page.field("Поставщик", "Поставщик:", seller, 40, 170, lab, val, layout, width=520)
    y = page.field("ИНН поставщика", "ИНН", inn, 40, y, lab, val, "inline", width=300)
    page.field("КПП поставщика", "КПП", kpp, 360, y - 40, lab, val, "inline", width=300)
    y = page.field("", "Покупатель:", buyer, 40, y + 5, lab, val, layout, width=520, answer=False)
    # items table
    cols = [40, 90, 560, 660, 800, 960]
    top = y + 10
    for i, header in enumerate(["№", "Товары (работы, услуги)", "Кол-во", "Цена", "Сумма"]):
        page.text((cols[i] + 6, top + 6), header, small)
    rows_y = top + 32
    for n, (name, qty, price) in enumerate(items, 1):
        for i, cell in enumerate([str(n), name, str(qty), fake.money(price), fake.money(qty * price)]):
            page.text((cols[i] + 6, rows_y + 6), cell, small)
        rows_y += 32
    for x in cols:
        d.line([(x, top), (x, rows_y)], fill=(40, 40, 40))
    for yy in range(top, rows_y + 1, 32):
        d.line([(40, yy), (960, yy)], fill=(40, 40, 40))
    y = rows_y + 20
    for qt, label, value in [("Сумма", "Итого:", fake.money(total)), ("НДС", "В том числе НДС (20%):", fake.money(vat))]:
        lb = page.text((520, y), label, lab)
        page.answer(qt, value, [page.text((lb[2] + 12, y - 2), value, val)])
        y += 34
    page.text((40, y + 10), f"Всего наименований {len(items)}, на сумму {fake.money(total)} руб.", small)
    page.text((40, y + 70), "Руководитель ____________      Бухгалтер ____________", lab)
    stamp(page, rng.randint(300, 450), min(y + 90, 880), seller.replace('"', ""))
    return page, "Счёт"


def render_driver_licence(rng: random.Random) -> tuple[Page, str]:
    p = fake.person(rng)
    city, _, region = rng.choice(fake.CITIES)
    issued_year = rng.randint(2014, 2024)
    issued = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{issued_year}"
    valid = issued[:6] + str(issued_year + 10)
    number = f"{rng.randint(10, 99)} {rng.randint(10, 99)} {rng.randint(100000, 999999)}"
    cats = ", ".join(sorted(rng.sample(["A", "A1", "B", "B1", "C", "C1", "D", "M", "BE"], rng.randint(1, 4))))
    page = Page(background((880, 560), rng, (rng.randint(236, 248), rng.randint(214, 228), rng.randint(226, 238))), rng)
    title, lab, val = page.font(BOLD, 20), page.font(SANS, 15), page.font(SANS, 23)
    layout = rng.choice(["inline", "stacked"])
    page.text((230, 20), "ВОДИТЕЛЬСКОЕ УДОСТОВЕРЕНИЕ", title, fill=(140, 40, 60))
    page.draw.rectangle((30, 90, 230, 350), outline=(120, 120, 130), width=2)
    x, y = 260, 70
    lb = page.text((x, y), "1.", lab, fill=(90, 90, 100))
    surname_box = page.text((lb[2] + 14, y - 2), p.surname.upper(), val)
    page.answer("Фамилия", p.surname.upper(), [surname_box])
    page.text((surname_box[2] + 24, y - 2), translit(p.surname), val)  # Latin line as on the real card
    y = surname_box[3] + 16
    y = page.field("", "2.", f"{p.name.upper()} {p.patronymic.upper()}", x, y, lab, val, "inline", width=560, answer=False)
    y = page.field("", "3.", f"{p.birth_date} {city.upper()}", x, y, lab, val, "inline", width=560, answer=False)
    y = page.field("Дата выдачи", "4a)", issued, x, y, lab, val, "inline", width=250)
    page.field("Действительно до", "4b)", valid, x + 280, y - 42, lab, val, "inline", width=250)
    y = page.field("", "4c)", f"ГИБДД {region}{rng.randint(10, 99)}", x, y, lab, val, "inline", width=560, answer=False)
    y = page.field("Номер удостоверения", "5.", number, x, y, lab, page.font(BOLD, 26), "inline", width=560)
    page.field("Категории", "9." if layout == "inline" else "9. Категории", cats, x, y, lab, val, layout, width=560)
    return page, "Водительское удостоверение"


def render_vehicle_registration(rng: random.Random) -> tuple[Page, str]:
    _, _, region = rng.choice(fake.CITIES)
    plate, vin = fake.plate(rng, region), fake.vin(rng)
    model, color, year = rng.choice(fake.CAR_MODELS), rng.choice(fake.CAR_COLORS), str(rng.randint(2005, 2024))
    page = Page(background((900, 620), rng, (rng.randint(238, 248), rng.randint(232, 242), rng.randint(210, 224))), rng)
    title, lab, val = page.font(BOLD, 18), page.font(SANS, 16), page.font(SANS + MONO[:1], 23)
    layout = rng.choice(["inline", "stacked"])
    page.text((90, 24), "СВИДЕТЕЛЬСТВО О РЕГИСТРАЦИИ ТРАНСПОРТНОГО СРЕДСТВА", title, fill=(60, 60, 120))
    page.text((660, 60), f"{rng.randint(10, 99)} {rng.randint(10, 99)} № {rng.randint(100000, 999999)}",
              page.font(MONO[:1], 22), fill=(185, 25, 30))
    y = 100
    for qt, label, value in [("Регистрационный знак", "Регистрационный знак", plate),
                             ("VIN", "Идентификационный номер (VIN)", vin),
                             ("Марка модель", "Марка, модель", model), ("", "Тип ТС", "ЛЕГКОВОЙ"),
                             ("Год выпуска", "Год выпуска ТС", year), ("Цвет", "Цвет", color)]:
        y = page.field(qt, label, value, 50, y, lab, val, layout, width=780, answer=bool(qt))
    stamp(page, rng.randint(650, 760), rng.randint(470, 540), "ГИБДД " + region)
    return page, "СТС"


RENDERERS: dict[str, Callable[[random.Random], tuple[Page, str]]] = {
    "passport": render_passport,
    "snils": render_snils,
    "invoice": render_invoice,
    "driver_licence": render_driver_licence,
    "vehicle_registration": render_vehicle_registration,
}


# ---------------------------------------------------------------- degradation
def _homography(points_from, points_to) -> np.ndarray:
    rows, rhs = [], []
    for (x, y), (u, v) in zip(points_from, points_to):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y]); rhs.append(u)
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y]); rhs.append(v)
    h = np.linalg.solve(np.array(rows, float), np.array(rhs, float))
    return np.append(h, 1).reshape(3, 3)


def degrade(page: Page, difficulty: str, rng: random.Random) -> Image.Image:
    """Apply the difficulty's geometry (bboxes follow it) and photometric noise."""
    img = page.image
    w, h = img.size
    if difficulty == "clean":
        return img
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    if difficulty == "scanned":
        angle, jitter = rng.uniform(-1.5, 1.5), 0.0
    else:
        angle, jitter = rng.uniform(-3, 3), 0.03
    a = math.radians(angle)
    cx, cy = w / 2, h / 2
    moved = []
    for x, y in corners:
        dx, dy = x - cx, y - cy
        rx, ry = cx + dx * math.cos(a) - dy * math.sin(a), cy + dx * math.sin(a) + dy * math.cos(a)
        moved.append((rx + rng.uniform(-jitter, jitter) * w, ry + rng.uniform(-jitter, jitter) * h))
    forward = _homography(corners, moved)
    inverse = np.linalg.inv(forward)
    coeffs = tuple((inverse / inverse[2, 2]).flatten()[:8])
    paper = tuple(int(c) for c in np.asarray(img)[2, 2])
    out = img.transform((w, h), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC, fillcolor=paper)
    for f in page.fields:
        x1, y1, x2, y2 = f.bbox
        pts = forward @ np.array([[x1, x2, x2, x1], [y1, y1, y2, y2], [1, 1, 1, 1]], float)
        xs, ys = pts[0] / pts[2], pts[1] / pts[2]
        f.bbox = (max(0, int(math.floor(xs.min()))), max(0, int(math.floor(ys.min()))),
                  min(w - 1, int(math.ceil(xs.max()))), min(h - 1, int(math.ceil(ys.max()))))
    arr = np.asarray(out).astype(np.float32)
    nrng = np.random.default_rng(rng.randrange(2**32))
    if difficulty == "photographed":
        gy = np.linspace(rng.uniform(0.9, 1.05), rng.uniform(0.85, 1.0), h)[:, None, None]
        gx = np.linspace(rng.uniform(0.82, 0.92), rng.uniform(1.0, 1.08), w)[None, :, None]
        arr = arr * gx * gy + nrng.normal(0, 7, arr.shape)
    else:
        arr = arr + nrng.normal(0, 4, arr.shape)
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if difficulty == "photographed":  # a phone camera far away: resolution lost, then upscaled
        small = out.resize((int(w * 0.45), int(h * 0.45)), Image.Resampling.BILINEAR)
        out = small.resize((w, h), Image.Resampling.BILINEAR)
    return out.filter(ImageFilter.GaussianBlur(0.7 if difficulty == "scanned" else 1.0))


# ---------------------------------------------------------------- data set
def generate(out_dir: str | Path, per_class: int = 10, seed: int = 0) -> Path:
    """Write ``images/*.jpg`` and ``task.csv`` under ``out_dir``; return the CSV path.

    Args:
        out_dir: Target folder (created).
        per_class: Documents per class (passports included; the bundled set has 10).
        seed: Random seed; the same seed gives byte-identical files.
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for class_index, (key, render) in enumerate(RENDERERS.items()):
        for i in range(per_class):
            rng = random.Random(f"{seed}/{key}/{i}")  # per document: adding classes changes no other file
            page, doc_class = render(rng)
            difficulty = DIFFICULTIES[(i + class_index) % 3]
            image = degrade(page, difficulty, rng)
            rel = f"images/{key}_{i:04d}_{difficulty}.jpg"
            buf = io.BytesIO()
            quality = {"clean": 90, "scanned": 50, "photographed": 35}[difficulty]
            image.save(buf, "JPEG", quality=quality, optimize=True)
            (out / rel).write_bytes(buf.getvalue())
            for f in page.fields:
                rows.append([rel, rng.choice(QUESTIONS[f.question_type]), f.value, doc_class, f.question_type,
                             "[" + ",".join(str(v) for v in f.bbox) + "]"])
    csv_path = out / "task.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["image_path", "question", "answer", "doc_class", "question_type", "answer_bbox"])
        writer.writerows(rows)
    return csv_path
