"""Plausible fake Russian personal and company data, with the real checksums.

Nothing here is a real person: names are drawn independently from common-name lists.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

MALE_NAMES = ["Александр", "Дмитрий", "Максим", "Сергей", "Андрей", "Алексей", "Артём", "Илья", "Кирилл",
              "Михаил", "Никита", "Матвей", "Роман", "Егор", "Иван", "Павел", "Владимир", "Николай", "Юрий", "Олег"]
FEMALE_NAMES = ["Анастасия", "Мария", "Анна", "Виктория", "Екатерина", "Наталья", "Марина", "Полина", "Дарья",
                "Елена", "Ольга", "Татьяна", "Ирина", "Светлана", "Юлия", "Ксения", "Алина", "Вера", "Галина"]
# Male surname -> female form by the usual rules (-ов/-ев/-ин -> +а, -ский -> -ская).
SURNAMES = ["Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов", "Новиков",
            "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров", "Павлов", "Козлов",
            "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин", "Захаров", "Зайцев", "Соловьёв",
            "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв", "Сергеев", "Кузьмин", "Фролов",
            "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв", "Ильин", "Максимов", "Поляков",
            "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев", "Антонов", "Тарасов", "Жуков",
            "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев", "Герасимов", "Богданов", "Осипов",
            "Сидоров", "Матвеев", "Титов", "Марков", "Миронов", "Крылов", "Куликов", "Карпов", "Власов",
            "Мельников", "Денисов", "Гаврилов", "Тихонов", "Казаков", "Афанасьев", "Данилов", "Савельев",
            "Тимофеев", "Фомин", "Чернов", "Абрамов", "Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров",
            "Калинин", "Исаев", "Чернышёв", "Быков", "Маслов", "Родионов", "Коновалов", "Лазарев",
            "Воронин", "Климов", "Филатов", "Пономарёв", "Голубев", "Кудрявцев", "Прохоров", "Наумов",
            "Потапов", "Журавлёв", "Овчинников", "Трофимов", "Леонов", "Соболев", "Ермаков", "Колесников",
            "Гончаров", "Емельянов", "Никифоров", "Грачёв", "Котов", "Гришин", "Ефремов", "Архипов",
            "Громов", "Кириллов", "Малышев", "Панов", "Моисеев", "Румянцев", "Акимов", "Кондратьев",
            "Бирюков", "Горбунов", "Анисимов", "Ерёмин", "Тихомиров", "Галкин", "Лукьянов", "Михеев",
            "Скворцов", "Юдин", "Белоусов", "Нестеров", "Симонов", "Прокофьев", "Харитонов", "Князев",
            "Цветков", "Левин", "Митрофанов", "Воронов", "Аксёнов", "Софронов", "Мальцев", "Логинов",
            "Горшков", "Савин", "Краснов", "Майоров", "Демидов", "Елисеев", "Рыбаков", "Сафонов",
            "Плотников", "Демин", "Хохлов", "Жданов", "Лавров", "Островский", "Вишневский", "Покровский"]
# Father's name -> patronymic stem (Иван -> Иванович / Ивановна).
FATHER_NAMES = {"Александр": "Александров", "Дмитрий": "Дмитриев", "Сергей": "Сергеев", "Андрей": "Андреев",
                "Алексей": "Алексеев", "Иван": "Иванов", "Михаил": "Михайлов", "Николай": "Николаев",
                "Владимир": "Владимиров", "Павел": "Павлов", "Юрий": "Юрьев", "Олег": "Олегов",
                "Виктор": "Викторов", "Игорь": "Игорев", "Евгений": "Евгеньев", "Анатолий": "Анатольев",
                "Василий": "Васильев", "Петр": "Петров", "Геннадий": "Геннадьев", "Борис": "Борисов"}
CITIES = [("г. Москва", "Москве", "77"), ("г. Санкт-Петербург", "Санкт-Петербургу и Ленинградской обл.", "78"),
          ("г. Новосибирск", "Новосибирской обл.", "54"), ("г. Екатеринбург", "Свердловской обл.", "66"),
          ("г. Казань", "Республике Татарстан", "16"), ("г. Нижний Новгород", "Нижегородской обл.", "52"),
          ("г. Самара", "Самарской обл.", "63"), ("г. Ростов-на-Дону", "Ростовской обл.", "61"),
          ("г. Краснодар", "Краснодарскому краю", "23"), ("г. Воронеж", "Воронежской обл.", "36"),
          ("г. Пермь", "Пермскому краю", "59"), ("г. Уфа", "Республике Башкортостан", "02"),
          ("г. Омск", "Омской обл.", "55"), ("г. Челябинск", "Челябинской обл.", "74"),
          ("г. Тверь", "Тверской обл.", "69"), ("г. Ярославль", "Ярославской обл.", "76")]
BIRTH_REGIONS = ["Московской обл.", "Тульской обл.", "Калужской обл.", "Рязанской обл.", "Тверской обл.",
                 "Владимирской обл.", "Ивановской обл.", "Курской обл.", "Орловской обл.", "Брянской обл."]
SETTLEMENTS = ["Сергиев Посад", "Алексин", "Обнинск", "Касимов", "Кимры", "Муром", "Шуя", "Льгов", "Мценск",
               "Клинцы", "Коломна", "Ефремов", "Людиново", "Скопин", "Торжок", "Ковров"]
COMPANY_KINDS = ["ООО", "АО", "ООО", "ИП"]
COMPANY_WORDS = ["Альфа", "Вектор", "Гранит", "Меридиан", "Северный ветер", "Технопром", "Стройресурс",
                 "Интеграл", "Лотос", "Спектр", "Орион", "Вега", "Контур", "Логистик Плюс", "Эталон"]
CAR_MODELS = ["LADA GRANTA", "LADA VESTA", "KIA RIO", "HYUNDAI SOLARIS", "VOLKSWAGEN POLO", "SKODA OCTAVIA",
              "TOYOTA CAMRY", "RENAULT LOGAN", "HAVAL JOLION", "CHERY TIGGO 7 PRO", "GEELY COOLRAY"]
CAR_COLORS = ["БЕЛЫЙ", "ЧЕРНЫЙ", "СЕРЫЙ", "СЕРЕБРИСТЫЙ", "СИНИЙ", "КРАСНЫЙ", "ЗЕЛЕНЫЙ", "КОРИЧНЕВЫЙ"]
PLATE_LETTERS = "АВЕКМНОРСТУХ"  # letters shared by the Cyrillic and Latin alphabets
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q in a VIN


@dataclass(frozen=True)
class Person:
    surname: str
    name: str
    patronymic: str
    sex: str  # "МУЖ." / "ЖЕН."
    birth_date: str
    birth_place: str

    @property
    def full_name(self) -> str:
        return f"{self.surname} {self.name} {self.patronymic}"


def date(rng: random.Random, year_from: int, year_to: int) -> str:
    return f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.{rng.randint(year_from, year_to)}"


def female_surname(male: str) -> str:
    if male.endswith("ский"):
        return male[:-2] + "ая"
    return male + "а"


def person(rng: random.Random) -> Person:
    male = rng.random() < 0.5
    surname = rng.choice(SURNAMES)
    father = rng.choice(sorted(FATHER_NAMES))
    # Иванов -> Иванович / Ивановна, Сергеев -> Сергеевич / Сергеевна, Юрьев -> Юрьевич.
    patronymic = FATHER_NAMES[father] + ("ич" if male else "на")
    birth_place = f"гор. {rng.choice(SETTLEMENTS)} {rng.choice(BIRTH_REGIONS)}"
    return Person(
        surname=surname if male else female_surname(surname),
        name=rng.choice(MALE_NAMES if male else FEMALE_NAMES),
        patronymic=patronymic,
        sex="МУЖ." if male else "ЖЕН.",
        birth_date=date(rng, 1960, 2003),
        birth_place=birth_place,
    )


def snils(rng: random.Random) -> str:
    """A SNILS ``XXX-XXX-XXX YY`` with a valid control number."""
    while True:
        digits = [rng.randint(0, 9) for _ in range(9)]
        if int("".join(map(str, digits))) > 1001998:  # checksums are defined above this number
            break
    return format_snils(digits)


def snils_control(digits: list[int]) -> int:
    total = sum(d * (9 - i) for i, d in enumerate(digits))
    if total < 100:
        return total
    if total in (100, 101):
        return 0
    total %= 101
    return 0 if total == 100 else total


def format_snils(digits: list[int]) -> str:
    s = "".join(map(str, digits))
    return f"{s[0:3]}-{s[3:6]}-{s[6:9]} {snils_control(digits):02d}"


_INN10_W = [2, 4, 10, 3, 5, 9, 4, 6, 8]
_INN12_W1 = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8]
_INN12_W2 = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]


def inn_valid(inn: str) -> bool:
    d = [int(c) for c in inn]
    if len(d) == 10:
        return sum(a * b for a, b in zip(_INN10_W, d)) % 11 % 10 == d[9]
    if len(d) == 12:
        return (sum(a * b for a, b in zip(_INN12_W1, d)) % 11 % 10 == d[10]
                and sum(a * b for a, b in zip(_INN12_W2, d)) % 11 % 10 == d[11])
    return False


def inn(rng: random.Random, region: str, legal_entity: bool = True) -> str:
    """A 10-digit (company) or 12-digit (person) INN with valid check digits."""
    body = [int(c) for c in region] + [rng.randint(0, 9) for _ in range(7 if legal_entity else 8)]
    if legal_entity:
        body.append(sum(a * b for a, b in zip(_INN10_W, body)) % 11 % 10)
    else:
        body.append(sum(a * b for a, b in zip(_INN12_W1, body)) % 11 % 10)
        body.append(sum(a * b for a, b in zip(_INN12_W2, body)) % 11 % 10)
    return "".join(map(str, body))


def kpp(rng: random.Random, region: str) -> str:
    return f"{region}{rng.randint(1, 99):02d}01001"


def money(value: float) -> str:
    """``1 234 567,89`` as printed on Russian invoices (thin groups, comma decimals)."""
    whole, cents = f"{value:.2f}".split(".")
    groups = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    return " ".join(groups) + "," + cents


def plate(rng: random.Random, region: str) -> str:
    letters = [rng.choice(PLATE_LETTERS) for _ in range(3)]
    return f"{letters[0]}{rng.randint(1, 999):03d}{letters[1]}{letters[2]}{region}"


def vin(rng: random.Random) -> str:
    return "".join(rng.choice(VIN_CHARS) for _ in range(17))
