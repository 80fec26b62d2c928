"""Facts a person lets slip in conversation, and the ways they are later asked about.

Each `FactKind` has value pools, statements (each with an indirect question that refers to the
statement's circumstances rather than its words), a split form (the companion asks, the person
answers in a fragment), direct and paraphrased questions, an optional event for "when" questions,
and distractors: the same kind of fact about someone else, sprinkled into small talk.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIRST_NAMES = """Mara Ines Talia Priya Noor Greta Sofia Hana Leila Esme Alba Yara Freya Ingrid Carmen Dalia Rosa
Nadia Imogen Beatriz Olga Selin Anouk Keiko Thandi Marisol Odette Lucia Vesna Amara Ilse Fenna Zora Petra Ayla
Tomas Arjun Felix Ibrahim Mateo Oskar Emil Rafael Kenji Lorenzo Idris Bram Anders Callum Dmitri Hugo Jonah Kofi
Luca Milo Nikhil Omar Pavel Ruben Soren Tariq Viktor Wendell Yusuf Ezra Florin Joaquin""".split()
CITIES = """Lisbon Porto Valencia Tbilisi Ljubljana Krakow Gdansk Tallinn Bergen Aarhus Ghent Utrecht Leipzig Graz
Trieste Bologna Marseille Lyon Bordeaux Seville Granada Cork Galway Inverness Halifax Winnipeg Tucson Boise
Savannah Asheville Duluth Oaxaca Cusco Valparaiso Hobart Dunedin Nagoya Busan Hanoi Penang Kochi Mysore""".split()
COMPANIES = ["Brightwater Logistics", "Halcyon Labs", "Norrland Timber", "Quillfeather Press", "Redfern Dental",
             "Sablewood Studios", "Tidewell Insurance", "Umbra Robotics", "Vantage Freight", "Kestrel Analytics",
             "Marlowe & Finch", "Copperleaf Bakery", "Ostrander Civil", "Pinegrove Clinic", "Lumen Fibre"]
JOBS = ["nurse", "sound engineer", "data analyst", "pastry chef", "civil engineer", "paralegal", "dental hygienist",
        "project manager", "pharmacist", "graphic designer", "forklift instructor", "translator", "physiotherapist"]
FOODS = ["mushroom risotto", "pad see ew", "shakshuka", "beef rendang", "pierogi", "lamb tagine", "okonomiyaki",
         "chicken katsu curry", "spanakopita", "pho", "khachapuri", "jollof rice", "bibimbap", "cacio e pepe"]
ALLERGENS = ["shellfish", "peanuts", "sesame", "kiwi", "penicillin", "latex", "buckwheat", "mustard", "celery"]
PETS = [("dog", "puppy"), ("cat", "kitten"), ("rabbit", "bunny"), ("parrot", "bird"), ("tortoise", "little guy")]
PET_NAMES = """Biscuit Pepper Juniper Waffles Mochi Pickle Ziggy Clementine Noodle Basil Pretzel Marlowe Olive
Turnip Sprocket Nutmeg Figaro Dumpling Pixel Rooibos""".split()
CARS = ["Skoda Octavia", "Mazda 3", "Volvo V60", "Honda Jazz", "Subaru Outback", "Kia Niro", "Toyota Yaris",
        "Fiat Panda", "Renault Clio", "Hyundai Ioniq"]
COLOURS = ["teal", "mustard yellow", "burgundy", "sage green", "navy", "coral", "charcoal", "lilac", "rust orange"]
BANDS = ["Khruangbin", "The National", "Fleetwood Mac", "Portishead", "Radiohead", "Nina Simone", "Beach House",
         "Bon Iver", "Massive Attack", "Tame Impala", "Cocteau Twins", "Talking Heads"]
BOOKS = [("Piranesi", "Susanna Clarke"), ("The Remains of the Day", "Kazuo Ishiguro"), ("Pachinko", "Min Jin Lee"),
         ("Middlemarch", "George Eliot"), ("The Overstory", "Richard Powers"), ("Stoner", "John Williams"),
         ("Circe", "Madeline Miller"), ("The Dispossessed", "Ursula K. Le Guin"), ("Beloved", "Toni Morrison")]
INSTRUMENTS = ["cello", "banjo", "ukulele", "clarinet", "drums", "bass guitar", "harmonica", "violin"]
BODY_PARTS = ["wrist", "collarbone", "ankle", "pinky finger", "two ribs", "left elbow"]
FALLS = ["skateboard", "ladder", "icy step", "climbing wall", "bike", "trampoline"]
FEARS = ["deep water", "moths", "heights", "escalators", "clowns", "thunderstorms", "needles"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
TEAMS = ["Celtic", "Atletico Madrid", "the Seattle Sounders", "Borussia Dortmund", "Feyenoord", "Napoli", "Ajax"]
STREETS = ["Alder Lane", "Quarry Road", "Bishop Street", "Marsh Avenue", "Linden Close", "Harbour Row", "Weaver Way"]
TITLES = ["team lead", "senior analyst", "head of operations", "shift supervisor", "deputy manager"]
VEGETABLES = ["tomato", "courgette", "chilli", "pumpkin", "runner bean", "aubergine"]


@dataclass(frozen=True)
class FactKind:
    """One kind of fact: `slots` name value pools; texts use `{slot}` placeholders."""

    key: str
    slots: dict[str, str]
    says: list[tuple[str, str]]  # (statement, indirect question about its circumstances)
    direct: list[str]
    paraphrase: list[str]
    answer: list[str]  # answer strings, formatted with the slots
    split: tuple[str, str] | None = None  # (companion asks, person answers)
    event: tuple[str, str] | None = None  # ("adopt my {animal}", "adopted my {animal}") for "when" questions,
    # asked only when the fact was told with the first statement (the one that reports the event)
    distractors: list[str] = field(default_factory=list)


KINDS: list[FactKind] = [
    FactKind("sister", {"name": "female"},
             [("My sister {name} called me at midnight again, she wants to borrow my car for a whole week.",
               "Who was it that rang me really late wanting to use my car?"),
              ("Spent the afternoon with my sister {name}, we did a jigsaw and argued about whose turn it was to host Christmas.",
               "Which family member did I do a puzzle with while we bickered about the holidays?"),
              ("{name} — that's my little sister — just passed her driving test on the fourth try!",
               "Who in my family finally got her licence after failing a bunch of times?")],
             ["What's my sister's name?", "Do you remember what my sister is called?"],
             ["What did I say my sibling, the girl, is called?", "Remind me what my sis goes by?"],
             ["{name}"], split=("Wait, what's your sister called? I don't think you ever told me.",
                                "{name}. She's the chaotic one of the family."),
             distractors=["My coworker's sister {other} is apparently a professional harpist.",
                          "Funny, my neighbour's sister is also named {other}."]),
    FactKind("friend", {"name": "any"},
             [("Had brunch with {name}, my best friend since primary school, and we talked for four hours straight.",
               "Who did I spend four hours chatting with over brunch?"),
              ("My best mate {name} is the only person who remembers my coffee order.",
               "Who's the one person who knows exactly how I take my coffee?")],
             ["What's my best friend's name?", "Who is my best friend?"],
             ["Who did I say has been my closest pal since I was a kid?", "What's the name of my oldest friend?"],
             ["{name}"], split=("Who's your best friend, by the way? You've mentioned them but never by name.",
                                "Oh, that's {name}. We've been inseparable since we were seven."),
             distractors=["{other} from the gym invited me to a barbecue, we're not close though."]),
    FactKind("boss", {"name": "any"},
             [("My manager {name} scheduled a meeting at 4:55 on a Friday. Who does that?",
               "Who booked that awful end-of-week meeting right before home time?"),
              ("New boss started today, {name}, seems nice but talks very fast.",
               "Who was the fast-talking person who started as my supervisor?")],
             ["What's my boss called?", "What is my manager's name?"],
             ["Who's the person I report to at work?", "Remind me of my supervisor's name?"],
             ["{name}"], distractors=["My friend's manager {other} let everyone go home early, jealous."]),
    FactKind("pet", {"pet": "pet", "petname": "petname"},
             [("We adopted a {animal} from the shelter today and named her {petname}!",
               "What did we call the animal we brought home from the shelter?"),
              ("{petname}, my {animal}, chewed through the charger cable again.",
               "Which of my animals destroyed a charging cable?")],
             ["What's my {animal}'s name?", "What is my {animal} called?"],
             ["What did I name my pet?", "Remind me what the {young} is called?"],
             ["{petname}"], split=("What are you going to name the new {young}?", "{petname}! It just suits her."),
             event=("adopt my {animal}", "adopted my {animal}"),
             distractors=["My cousin's {animal} is called {otherpet}, which is a ridiculous name."]),
    FactKind("hometown", {"city": "city"},
             [("I grew up in {city}, so this kind of rain doesn't bother me at all.",
               "Where did I spend my childhood that makes me fine with rain?"),
              ("Visiting my parents back in {city} this weekend, where I was born and raised.",
               "Which town do my parents live in, the one I'm from?")],
             ["Where did I grow up?", "What's my hometown?"],
             ["Which town am I originally from?", "Where was I raised as a kid?"],
             ["{city}"], split=("Where are you originally from, anyway?", "{city}, born and raised."),
             distractors=["My flatmate grew up in {othercity} and never stops talking about it."]),
    FactKind("job", {"job": "job", "company": "company"},
             [("First day as a {job} at {company} tomorrow, I'm so nervous.",
               "Where did I start my new position that I was nervous about?"),
              ("Been working as a {job} at {company} for three years now and honestly I still like it.",
               "Which organisation have I been with for three years?")],
             ["Where do I work?", "What company do I work for?"],
             ["Who's my employer?", "Which firm pays my salary?"],
             ["{company}"], event=("start my new job", "started my new job"),
             distractors=["My brother-in-law just got a job at {othercompany}, doing something with spreadsheets."]),
    FactKind("birthday", {"day": "day", "month": "month"},
             [("Just so you know, my birthday is on the {day} of {month}, I expect cake.",
               "Which day of the year am I expecting cake?"),
              ("I'll be turning a year older on {month} {day}, don't let me forget to book a table.",
               "When did I say I need to book a restaurant for my own celebration?")],
             ["When is my birthday?", "What date is my birthday?"],
             ["What day do I get a year older?", "When should you wish me many happy returns?"],
             ["{day}", "{month}"], distractors=["It was {other}'s birthday at work today, the cake was dry."]),
    FactKind("food", {"food": "food"},
             [("Honestly nothing beats {food}, I could eat it every single day.",
               "What could I eat every day without getting bored?"),
              ("Made {food} from scratch tonight and it was the best thing I've ever cooked.",
               "What was the best meal I've ever made myself?")],
             ["What's my favourite food?", "What dish do I love most?"],
             ["What meal am I obsessed with?", "If you had to cook for me, what would make me happiest?"],
             ["{food}"], distractors=["My aunt keeps trying to get me to like {otherfood}, never happening."]),
    FactKind("allergy", {"allergen": "allergen"},
             [("Had to leave the dinner early, turns out there was {allergen} in the sauce and I'm allergic.",
               "Why did I have to leave that dinner party early?"),
              ("Reminder to self: always ask about {allergen}, my allergy flared up badly last time.",
               "What do I always need to ask restaurants about?")],
             ["What am I allergic to?", "What's my allergy?"],
             ["What substance makes me ill if I eat it?", "What should a chef never put in my food?"],
             ["{allergen}"], distractors=["My nephew is allergic to {otherallergen}, poor kid."]),
    FactKind("car", {"colour": "colour", "car": "car"},
             [("Finally bought a car! A {colour} {car}, second hand but it runs like a dream.",
               "What did I spend my savings on that runs like a dream?"),
              ("The {colour} {car} is in the garage again, I swear it hates me.",
               "What vehicle keeps ending up at the mechanic?")],
             ["What car do I drive?", "What kind of car did I buy?"],
             ["What's my vehicle?", "What are my wheels these days?"],
             ["{car}"], event=("buy my car", "bought my car"),
             distractors=["My colleague drives a {othercolour} {othercar}, it's spotless inside."]),
    FactKind("address", {"number": "house", "street": "street"},
             [("We got the keys! Our new place is number {number} {street}, come visit.",
               "Where is the place we just got the keys for?"),
              ("If a parcel comes, I'm at {number} {street} now, the blue door.",
               "Where should parcels be sent now, the place with the blue door?")],
             ["What's my address?", "What street do I live on?"],
             ["Where's my new flat?", "What's the location of my home these days?"],
             ["{number} {street}"], event=("move into my new place", "moved into my new place"),
             distractors=["My old flat was on {otherstreet}, terrible damp."]),
    FactKind("gatecode", {"code": "code"},
             [("The gate code at my building is {code}, writing it here so I don't forget.",
               "What's the thing I wanted to remember to get into my building?"),
              ("Landlord changed the entry code to {code} without telling anyone.",
               "What did my landlord change without warning?")],
             ["What's the gate code?", "What is my building's entry code?"],
             ["What are the digits to get through the front entrance?", "What's the number I punch in at the door?"],
             ["{code}"], distractors=["My office door code is something like {othercode}, I always mix them up."]),
    FactKind("trip", {"city": "city", "month": "month"},
             [("Booked flights! We're going to {city} in {month}, I can't wait.",
               "Where did I book flights to?"),
              ("Our holiday to {city} is all planned, leaving in {month}.",
               "Where are we going for the holiday we planned?")],
             ["Where am I going on holiday?", "Where is my trip to?"],
             ["What's the destination of my upcoming getaway?", "Where am I flying off to?"],
             ["{city}"], event=("book the trip", "booked the trip"),
             distractors=["My parents went to {othercity} last year and hated the food."]),
    FactKind("injury", {"part": "part", "fall": "fall"},
             [("Ugh, I broke my {part} falling off a {fall}. Cast for six weeks.",
               "What happened that put me in a cast for six weeks?"),
              ("Just got back from A&E, fractured my {part} after slipping off a {fall}.",
               "What was I in the emergency room for?")],
             ["What did I break?", "What injury did I have?"],
             ["What bone did I fracture?", "What did I hurt in that accident?"],
             ["{part}"], event=("hurt myself", "hurt myself"),
             distractors=["My friend sprained her {otherpart} playing netball."]),
    FactKind("promotion", {"title": "title"},
             [("Big news: they promoted me to {title}! More money and more meetings.",
               "What new role did I get that means more meetings?"),
              ("It's official, I'm the new {title}. Still can't believe it.",
               "What position was I moved up to at work?")],
             ["What was I promoted to?", "What's my new job title?"],
             ["What role did I get moved up into?", "What's my position after the promotion?"],
             ["{title}"], event=("get promoted", "got promoted")),
    FactKind("colour", {"colour": "colour"},
             [("{colour} has always been my colour, half my wardrobe is {colour}.",
               "What shade is half my wardrobe?")],
             ["What's my favourite colour?", "Which colour do I like best?"],
             ["What shade do I always pick?", "If you bought me a jumper, what colour should it be?"],
             ["{colour}"], distractors=["The waiting room was painted {othercolour}, very soothing."]),
    FactKind("band", {"band": "band"},
             [("Got tickets to see {band} live, I've loved them since I was a teenager!",
               "Who am I going to see in concert?"),
              ("Listening to {band} on repeat while I clean, they never get old.",
               "What do I always put on when I'm cleaning?")],
             ["What's my favourite band?", "Which band do I love?"],
             ["What music am I into the most?", "Who's my favourite artist?"],
             ["{band}"], distractors=["My flatmate blasts {otherband} at 7am, I'm going to lose it."]),
    FactKind("book", {"book": "book"},
             [("I'm reading {title} by {author} and I keep missing my stop on the train.",
               "What's been making me miss my stop on the train?")],
             ["What book am I reading?", "What am I reading at the moment?"],
             ["Which novel did I say I was in the middle of?", "What's on my nightstand right now?"],
             ["{title}"], distractors=["Someone at book club said {othertitle} was overrated."]),
    FactKind("instrument", {"instrument": "instrument", "years": "small"},
             [("I've been learning the {instrument} for {years} years and I'm still bad at it.",
               "What have I been practising for years and still find hard?"),
              ("My {instrument} lesson got cancelled, so I practised scales on my own.",
               "What lesson of mine got cancelled?")],
             ["What instrument do I play?", "What instrument am I learning?"],
             ["What music thing am I taking lessons in?", "What do I practise scales on?"],
             ["{instrument}"], distractors=["The kid next door is learning the {otherinstrument}, very loudly."]),
    FactKind("fear", {"fear": "fear"},
             [("Confession: I'm absolutely terrified of {fear}, always have been.",
               "What did I confess scares me?")],
             ["What am I afraid of?", "What's my biggest fear?"],
             ["What gives me the creeps more than anything?", "What's my phobia?"],
             ["{fear}"]),
    FactKind("team", {"team": "team"},
             [("I've supported {team} since I was six, through all the bad seasons.",
               "Who have I stuck with through all the bad seasons?")],
             ["What football team do I support?", "Which team am I a fan of?"],
             ["Who do I cheer for in football?", "Which club do I follow?"],
             ["{team}"]),
    FactKind("garden", {"count": "small", "veg": "veg"},
             [("Planted {count} {veg} plants on the balcony this morning, wish me luck.",
               "What did I put in pots on the balcony?")],
             ["What did I plant on the balcony?", "What vegetables am I growing?"],
             ["What am I trying to grow at home?", "What's in my little balcony garden?"],
             ["{veg}"], event=("plant the balcony garden", "planted the balcony garden")),
    FactKind("appointment", {"weekday": "weekday", "hour": "hour"},
             [("Dentist appointment is on {weekday} at {hour}, dreading it already.",
               "When's the appointment I'm dreading?")],
             ["When is my dentist appointment?", "What time is my dentist appointment?"],
             ["When do I have to get my teeth looked at?", "When am I seeing the dentist?"],
             ["{weekday}"]),
]

# Two facts from different sittings: the first names someone or something, the second says what
# happened to them by name only, so the question needs both.
CHAINS: list[tuple[str, list[str], list[str], list[str]]] = [
    ("sister", ["{name} finally moved to {city2}, she sent me photos of the flat."],
     ["Which city did my sister move to?", "Where does my sister live now?"], ["{city2}"]),
    ("friend", ["{name} is getting married in {city2} next spring, I'm already stressing about the speech."],
     ["Where is my best friend's wedding?", "In which city is my best friend getting married?"], ["{city2}"]),
    ("pet", ["Took {petname} to the vet, she needed {count2} stitches on her paw."],
     ["How many stitches did my {animal} need?", "What did the vet do for my {animal}'s paw?"], ["{count2}"]),
    ("boss", ["Heard {name} is leaving to join {company2}, no idea who replaces them."],
     ["Where is my manager going to work next?", "Which company is my boss leaving for?"], ["{company2}"]),
    ("job", ["{company} is relocating the whole office to {city2}, apparently."],
     ["Where is my workplace moving to?", "To which city is my company relocating?"], ["{city2}"]),
]

WHEN_QUESTIONS = ["When did I {event}?", "What day was it that I {past}?",
                  "Do you remember the date I {past}?"]
CONTEXT_LEADS = [("I was telling someone about {topic} earlier and totally blanked.", "Oh no! What did you blank on?"),
                 ("My mind went completely empty about {topic} today.", "Happens to everyone. What was it?"),
                 ("Random, but I was thinking about {topic}.", "Oh yeah? What about it?")]
TOPICS = {"sister": "my sister", "friend": "my best friend", "boss": "my manager", "pet": "my {animal}",
          "hometown": "where I grew up", "job": "my work", "birthday": "my birthday", "food": "food I like",
          "allergy": "my allergy", "car": "my car", "address": "my new place", "gatecode": "my building",
          "trip": "our holiday", "injury": "my accident", "promotion": "my promotion", "colour": "colours",
          "band": "music", "book": "what I'm reading", "instrument": "my lessons", "fear": "things that scare me",
          "team": "football", "garden": "the balcony", "appointment": "the dentist"}
CONTEXT_FOLLOWUPS = ["What was the answer again? You know, the thing I told you ages ago.",
                     "Can you remind me? I know I told you once.", "What did I tell you about that, back then?"]
