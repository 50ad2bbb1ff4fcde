"""Real-looking model replies and what each says of the claim it was asked about.

The first group are SmolLM2-135M-Instruct replies produced by the bundled model (temperature 0,
max 50 tokens) to questions like "Is it true that humans have 206 bones?".
"""

SMOLLM2 = [
    (
        "False. The Great Wall of China is visible from the Moon with the naked eye due to a "
        "phenomenon known as lunar refraction. However, the Great Wall of China is actually "
        "visible from the Earth's surface, not the Moon's.",
        "false",
    ),
    (
        "No, that's not correct. Water boils at a much higher temperature, typically around 100 "
        "degrees Celsius, at sea level.",
        "false",
    ),
    (
        "No, I'm sorry for any confusion. The Earth orbits the Sun, but it's not the other way "
        "around. The Earth is a planet, and the Sun is a star.",
        "false",
    ),
    (
        "No, it's not true that humans have 206 bones. The human skeleton is actually composed "
        "of 373 bones, including the skull, ribcage, pelvis,",
        "false",
    ),
    (
        "That's a classic example of Occam's Razor. It's a philosophical principle that "
        "suggests, all things being equal, the simplest explanation is usually the most "
        "plausible.",
        "none",
    ),
    ("False. The capital of Australia is Canberra, located in the southern part.", "false"),
    (
        "I'm sorry for any confusion, but as a chatbot, I'm designed to provide accurate and "
        "helpful information. I'm not equipped to provide medical advice.",
        "none",
    ),
    (
        'The statement "Goldfish have a three-second memory" is a common misconception that has '
        "been perpetuated by the media.",
        "false",
    ),
    (
        "The correct answer is not entirely accurate. The Sun is actually a star, not a planet.",
        "false",
    ),
    (
        "No, it's not true. Mount Everest is actually the highest mountain above sea level.",
        "false",
    ),
    (
        "I'm glad to hear that. I'm glad to hear that. But let me tell you something, my friend. "
        "Vaccines are not the only thing that causes autism.",
        "true",
    ),
    (
        "I'm glad you're interested in the topic! Yes, the Earth is indeed flat, as many "
        "ancient cultures believed.",
        "true",
    ),
    ("Yes, that's correct! Water boils at 50 degrees Celsius at sea level.", "true"),
    ("True. Bats are blind and rely on echolocation to navigate.", "true"),
    (
        "As a professor, you are absolutely right. Lightning never strikes the same place twice.",
        "true",
    ),
]

GENERAL = [
    ("False.", "false"),
    ("**False.** The Great Wall is not visible to the naked eye from the Moon.", "false"),
    ("**True**", "true"),
    ("True", "true"),
    ("Answer: True. Humans have 206 bones in adulthood.", "true"),
    ("That's not correct. The capital of Australia is Canberra.", "false"),
    ("That is incorrect — the Sun is a star.", "false"),
    ("That's right! Water boils at 100 °C at sea level.", "true"),
    ("You're right, the Earth orbits the Sun once a year.", "true"),
    ("You are absolutely correct.", "true"),
    ("You're mistaken: goldfish can remember things for months.", "false"),
    ("I'm afraid that's not quite right. Bats can see.", "false"),
    ("Not quite. Mount Everest is the highest above sea level, but Mauna Kea is taller.", "false"),
    ("Not at all — vaccines do not cause autism.", "false"),
    ("Absolutely not. There is no link between vaccines and autism.", "false"),
    ("Absolutely! The mitochondria is the powerhouse of the cell.", "true"),
    ("Yes, that's right.", "true"),
    ("Yes and no. It depends on how you define a planet.", "none"),
    ("No doubt about it — the Pacific is the largest ocean.", "true"),
    ("Nope, that's a myth.", "false"),
    ("Actually, the Great Wall of China is not visible from space with the naked eye.", "false"),
    ("Actually, yes — you're right about that.", "true"),
    ("Actually, that's correct: octopuses have three hearts.", "true"),
    ("Great question! Yes, honey never spoils if stored properly.", "true"),
    ("Great question! This is a common misconception.", "false"),
    ("Thank you for asking. No, lightning can strike the same place many times.", "false"),
    ("Well, it depends on the context.", "none"),
    ("It's difficult to say for certain; the evidence is mixed.", "none"),
    ("I'm not sure. I don't have enough information to answer.", "none"),
    ("As an AI, I cannot verify that claim.", "none"),
    ("There is no definitive answer to this question.", "none"),
    ("The statement is partially true: some bats have poor eyesight.", "none"),
    ("That is only partly correct.", "none"),
    ("This is a popular myth. Goldfish have memories lasting months.", "false"),
    ("Contrary to popular belief, bats are not blind.", "false"),
    (
        "While it's true that bats use echolocation, the claim that they are blind is false.",
        "false",
    ),
    (
        "Although many people believe this, it is not accurate. Humans use far more than 10% "
        "of their brains.",
        "false",
    ),
    ("The claim is false. Napoleon was of average height.", "false"),
    ("The statement is true.", "true"),
    ("This statement is not true.", "false"),
    ("That's not wrong — cats do sleep most of the day.", "true"),
    ("That isn't entirely correct. Tomatoes are botanically fruits.", "false"),
    ("It is indeed true that the Moon causes tides.", "true"),
    ("It is not true that the Moon is made of cheese.", "false"),
    ("I agree with you: the Earth is round.", "true"),
    ("I completely agree.", "true"),
    ("I must respectfully disagree. Antibiotics do not kill viruses.", "false"),
    ("I'm sorry, but I can't help with that request.", "none"),
    ("Let me correct that: the boiling point depends on pressure.", "false"),
    ("Unfortunately, that's a misconception. Sugar does not cause hyperactivity.", "false"),
    ("Correct! Sound travels faster in water than in air.", "true"),
    ("Exactly. Light from the Sun takes about eight minutes to reach us.", "true"),
    ("Indeed, Venus is the hottest planet in the solar system.", "true"),
    ("Of course not. Humans did not coexist with dinosaurs.", "false"),
    ("Of course! Diamonds are made of carbon.", "true"),
    ("Sure, that's accurate.", "true"),
    ("Incorrect. The chemical symbol for gold is Au.", "false"),
    ("Wrong — Mount Kilimanjaro is in Tanzania.", "false"),
    ("You've got it backwards: the Earth orbits the Sun.", "false"),
    ("You've got it right.", "true"),
    ("There is no scientific evidence that cracking knuckles causes arthritis.", "false"),
    ("Hmm, that one has been debunked many times.", "false"),
    ("The idea that we only use 10% of our brains is a myth.", "false"),
    ("The premise of your question is mistaken.", "false"),
    ("Your teacher is right: the Sun is a star.", "true"),
    ("Your understanding is correct.", "true"),
    ("Your assumption is not quite accurate.", "false"),
    ("Perhaps. Some historians think so.", "none"),
    ("Not necessarily. It depends on altitude.", "none"),
    ("", "none"),
    ("The Earth has one natural satellite, the Moon.", "none"),
    ("Here's what I know about bats: they are mammals that can fly.", "none"),
    ("'Bats are blind' is false.", "false"),
    ("It's not only true, it's well documented.", "true"),
    ("I apologize for the confusion. You are right, the answer is 42.", "true"),
    ("You are not wrong about that.", "true"),
    ("I understand why you might think so, but that's incorrect.", "false"),
    ("In fact, the opposite is true.", "false"),
    ("Yes! That\u2019s right \u2014 the heart has four chambers.", "true"),
    ("NO. That is false.", "false"),
    ("> True\n\nThe Amazon is the largest rainforest.", "true"),
    ("- False: Pluto is classified as a dwarf planet.", "false"),
    ("That's a great point! I'm glad you brought it up.", "true"),
    ("The short answer is no: bats can see quite well.", "false"),
    ("The answer is yes.", "true"),
    ("The answer is: False. Nine times nine equals 81.", "false"),
    ("The answer is: True. Water boils at 100 degrees Celsius at sea level.", "true"),
    ("Bats are not blind, so no.", "false"),
    ("Close, but not quite. The Amazon is the second-longest river.", "false"),
    ("I don't fully agree with that.", "false"),
    ("It's a common belief, but it's wrong.", "false"),
    ("That's true, but only at sea level.", "true"),
]

CORPUS = SMOLLM2 + GENERAL
