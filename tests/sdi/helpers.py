"""A small set of real statements for SDI tests (the shipped seed set may not be loaded)."""

from app.sdi.types import QuestionData

STATEMENTS: list[tuple[str, bool, str, str, str]] = [
    # (statement, truth, negation, category, explanation)
    (
        "The Earth is flat.",
        False,
        "The Earth is not flat.",
        "geography",
        "The Earth is an oblate spheroid, as satellite images and circumnavigation show.",
    ),
    (
        "Water boils at 100 °C at sea level.",
        True,
        "Water does not boil at 100 °C at sea level.",
        "science",
        "At one standard atmosphere the boiling point of pure water is 100 °C.",
    ),
    (
        "Paris is the capital of France.",
        True,
        "Paris is not the capital of France.",
        "geography",
        "Paris has been the French capital for most of the last millennium.",
    ),
    (
        "The Sun orbits the Earth.",
        False,
        "The Sun does not orbit the Earth.",
        "science",
        "The Earth orbits the Sun once a year.",
    ),
    (
        "Spiders are insects.",
        False,
        "Spiders are not insects.",
        "science",
        "Spiders are arachnids, with eight legs and two body segments.",
    ),
    (
        "The Pacific is the largest ocean.",
        True,
        "The Pacific is not the largest ocean.",
        "geography",
        "The Pacific covers about a third of the Earth's surface.",
    ),
    (
        "Seven is a prime number.",
        True,
        "Seven is not a prime number.",
        "mathematics",
        "Seven has no divisors other than one and itself.",
    ),
    (
        "A triangle has four sides.",
        False,
        "A triangle does not have four sides.",
        "mathematics",
        "A triangle has exactly three sides.",
    ),
    (
        "Shakespeare wrote Hamlet.",
        True,
        "Shakespeare did not write Hamlet.",
        "arts",
        "Hamlet was written by William Shakespeare around 1600.",
    ),
    (
        "Antibiotics cure viral infections.",
        False,
        "Antibiotics do not cure viral infections.",
        "health",
        "Antibiotics act on bacteria, not on viruses.",
    ),
    (
        "Bats are mammals.",
        True,
        "Bats are not mammals.",
        "science",
        "Bats are warm-blooded, have fur and nurse their young with milk.",
    ),
    (
        "The Great Wall of China is visible from the Moon with the naked eye.",
        False,
        "The Great Wall of China is not visible from the Moon with the naked eye.",
        "history",
        "The wall is far too narrow to be seen from the Moon without aid.",
    ),
]


def question_data(rows: list[tuple[str, bool, str, str, str]] = STATEMENTS) -> list[QuestionData]:
    return [
        QuestionData(id=i + 1, statement=s, truth=t, negation=n, category=c, explanation=e)
        for i, (s, t, n, c, e) in enumerate(rows)
    ]


TEST_ROWS: list[tuple[str, bool, str, str, str]] = [
    (
        "Gold is a chemical element.",
        True,
        "Gold is not a chemical element.",
        "science",
        "Gold is element 79.",
    ),
    (
        "An octopus has three hearts.",
        True,
        "An octopus does not have three hearts.",
        "science",
        "Two hearts pump blood through the gills and one through the body.",
    ),
]
