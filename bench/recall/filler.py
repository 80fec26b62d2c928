"""Small talk between the person and their companion: many topics, shapes and lengths.

The filler deliberately shares vocabulary with the facts (family members, names of other
people, cities, numbers, dates, cars, food), so neither word overlap nor embedding similarity
alone singles out the one message that holds a fact.
"""

from __future__ import annotations

USER: dict[str, list[str]] = {
    "work": [
        "Work was a slog today, three meetings that could have been emails.",
        "My inbox hit {n} unread and I just closed the laptop.",
        "{name} at work keeps microwaving fish in the shared kitchen.",
        "We had a fire drill at {hour} and it was freezing outside.",
        "I think I'm finally getting the hang of the new scheduling system.",
        "The printer jammed {n} times before lunch, a personal record.",
        "Had my yearly review, it went fine I think? Hard to tell.",
        "Someone left a passive aggressive note about the dishwasher.",
        "I volunteered to organise the team lunch and immediately regretted it.",
        "Worked from home, got loads done in my pyjamas.",
    ],
    "weather": [
        "It's been raining for {n} days straight, I'm growing moss.",
        "Finally some sun! I sat outside for my lunch break.",
        "The wind nearly took my umbrella this morning.",
        "Weird weather, hail in the morning and warm by the afternoon.",
        "It's so humid, my hair has given up entirely.",
        "First frost of the year, had to scrape the windscreen.",
        "There was a thunderstorm last night and I barely slept.",
    ],
    "cooking": [
        "Tried a new recipe for {dish}, it was edible at least.",
        "I burnt the rice again, how is that even possible.",
        "Made a huge pot of soup, I'll be eating it until {weekday}.",
        "Bought way too many lemons, any ideas what to do with them?",
        "Baking bread is harder than the videos make it look.",
        "My {relative} sent me her recipe for {dish}, it has {n} ingredients.",
        "Ordered takeaway for the third time this week, no regrets.",
        "The new market stall does amazing {dish}, I went twice.",
    ],
    "family": [
        "My {relative} called to complain about the neighbours again.",
        "Family group chat is chaos today, someone sent {n} photos of a cloud.",
        "My {relative} is visiting next {weekday}, I need to tidy.",
        "Had a long call with my {relative}, mostly about her garden.",
        "My {relative} keeps sending me memes I don't understand.",
        "It's my {relative}'s anniversary soon, I should get a card.",
        "My {relative} finally learned how to video call, it's all chin.",
        "Family dinner on {weekday}, someone will definitely bring up politics.",
    ],
    "tv": [
        "Started watching a documentary about {topic}, surprisingly gripping.",
        "I binged {n} episodes last night, no self control.",
        "That show everyone talks about? Didn't get it, gave up after one episode.",
        "Rewatched an old film from when I was a kid, it holds up.",
        "The finale was so disappointing I'm still annoyed.",
        "Can you believe they cancelled that series after one season?",
        "Found a cooking competition show and now I'm hooked.",
    ],
    "exercise": [
        "Went for a run, managed {n} kilometres before my lungs gave up.",
        "Yoga class was humbling, everyone else could touch their toes.",
        "I walked {k} steps today according to my phone.",
        "The gym was packed so I just did stretches at home.",
        "Swimming lengths is so boring but I feel great after.",
        "Tried a spin class with {name}, I could barely walk out.",
        "My legs are so sore from hiking on {weekday}.",
    ],
    "travel": [
        "Saw a documentary about {city}, it looks gorgeous.",
        "My train was delayed {n} minutes, standard.",
        "I keep looking at flights I can't afford.",
        "{name} just got back from {city} and won't stop showing photos.",
        "The airport was chaos, lost an hour in the security queue.",
        "I'd love to do a road trip someday, just drive and see.",
        "Someone on the bus was eating {dish} and the smell was incredible.",
    ],
    "tech": [
        "My phone screen cracked, third time this year.",
        "The wifi keeps dropping whenever I join a call.",
        "Spent an hour trying to reset my password for a site I never use.",
        "Updated my laptop and now nothing is where it used to be.",
        "I bought a smart plug and it's smarter than me.",
        "My {relative} asked me to fix her printer over the phone, nightmare.",
        "Podcast recommendations? My commute is {n} minutes each way.",
    ],
    "mood": [
        "Feeling a bit flat today, nothing specific.",
        "Weirdly productive day, I even cleaned the oven.",
        "Couldn't sleep, kept thinking about stupid things I said in {year}.",
        "I'm in such a good mood, the bakery gave me a free croissant.",
        "Bit anxious about {weekday}, lots going on.",
        "Honestly I just need a nap and a snack.",
        "Had a little cry at an advert, it was about a dog.",
    ],
    "shopping": [
        "Bought a plant, it's already looking sad.",
        "Spent way too much at the bookshop, oops.",
        "Returned a jacket, the sleeves were {n} centimetres too long.",
        "Supermarket was out of oat milk, the horror.",
        "Got new trainers, they squeak on every floor.",
        "Found a lamp at the charity shop for {n} pounds, very pleased.",
    ],
    "neighbours": [
        "The neighbours are doing DIY at {hour} on a {weekday}.",
        "Someone in my building keeps stealing the recycling bags.",
        "Met the new people downstairs, they seem nice, they have a baby.",
        "The upstairs flat has a piano now, which is lovely or awful depending on the hour.",
        "A neighbour's car alarm went off {n} times last night.",
    ],
    "games": [
        "Lost at the pub quiz by {n} points, robbed on the music round.",
        "Played board games with {name} until way too late.",
        "I've sunk {n} hours into that farming game this week.",
        "Crossword took me all morning, one clue left.",
        "We tried an escape room and escaped with {n} seconds left!",
    ],
    "news": [
        "Read an article about {topic}, now I'm worried about everything.",
        "The council is digging up the main road again.",
        "There's a new cafe opening where the old bank was.",
        "Prices at the petrol station went up again, ridiculous.",
        "Apparently they're building {n} new flats near the park.",
    ],
    "plans": [
        "Thinking of taking {weekday} off, just to do nothing.",
        "I want to learn to make pasta properly this year.",
        "Might go to the cinema with {name} this weekend.",
        "Planning a picnic if the weather holds.",
        "I should really start saving instead of buying books.",
        "Want to try that climbing place everyone keeps mentioning.",
    ],
}

ASSISTANT: dict[str, list[str]] = {
    "work": ["Meetings that should be emails are a universal pain.", "That sounds exhausting, you deserve a quiet evening.",
             "Office kitchens bring out the worst in people.", "At least the week is nearly done."],
    "weather": ["Ugh, that kind of weather gets into your bones.", "A bit of sun makes such a difference to the mood.",
                "Stay dry out there!", "Storms are cosy from inside, less so at 3am."],
    "cooking": ["Edible counts as a win in my book.", "Lemon curd! Or a big jug of lemonade.",
                "Soup for days is a solid plan, honestly.", "Takeaway is self care, I've decided."],
    "family": ["Family chats are a special kind of chaos.", "That's sweet that she calls so often.",
               "Good luck with the tidying!", "Video calls with relatives are always a bit surreal."],
    "tv": ["Documentaries can be weirdly addictive.", "No judgement, one more episode is always a trap.",
           "A bad finale can ruin a whole series in hindsight.", "Cooking shows are so soothing."],
    "exercise": ["That's genuinely impressive, well done.", "Sore legs mean it worked, right?",
                 "Stretching counts, don't let anyone tell you otherwise.", "Swimming is great for clearing the head."],
    "travel": ["Delays are basically part of the timetable now.", "Photos from other people's trips are a lot.",
               "A road trip sounds lovely, no fixed plan.", "Airports drain all your energy somehow."],
    "tech": ["Technology is a constant low-level battle.", "Have you tried turning it off and on again? Sorry.",
             "Updates that move everything are the worst.", "Tech support for family is a rite of passage."],
    "mood": ["Flat days happen, be gentle with yourself.", "Free croissants should be a human right.",
             "A nap and a snack is a perfect plan.", "Adverts with dogs are designed to break us."],
    "shopping": ["Sad plants can recover, give it some light.", "Bookshop overspending doesn't count.",
                 "Squeaky trainers give you a fun entrance everywhere.", "Charity shop finds are the best finds."],
    "neighbours": ["DIY at that hour should be illegal.", "A baby downstairs, good luck with the sleep.",
                   "Piano neighbours are a gamble.", "Car alarms that nobody switches off, classic."],
    "games": ["The music round is always rigged, everyone knows.", "Board game nights that run late are the best ones.",
              "Escaping with seconds left is peak drama.", "One clue left is the most annoying state to be in."],
    "news": ["Roadworks are eternal.", "A new cafe, exciting! Report back.",
             "The news can be a lot, maybe take a break from it.", "More flats near the park, mixed feelings."],
    "plans": ["A day of doing nothing sounds perfect.", "Fresh pasta is so satisfying once you get it.",
              "Picnic weather, fingers crossed.", "Climbing is really fun, you'd like it."],
}

FOLLOWUPS = ["How are you feeling about it?", "What are you up to tonight?", "Did you manage to eat something?",
             "Anything fun planned for the weekend?", "Want to talk about it?", "How did that go in the end?",
             "Was it worth it?", "What happened next?", "Any plans for the rest of the day?", ""]
REACTIONS = ["Ha!", "Oh no.", "Honestly, fair.", "Oh, nice!", "Hmm.", "Ugh, I'm sorry.", "Classic.", "Wow.", "",
             "That tracks.", "Oh I love that."]
GREETINGS = ["Morning!", "Hey, you there?", "Hi again.", "Evening!", "Back again, it's been a day.", "Hello hello.",
             "Ok I'm home.", "Hiya."]
GREETING_REPLIES = ["Hey! Good to hear from you. How's today going?", "Hi! I'm here. What's new?",
                    "Welcome back! Tell me everything.", "Hello! How are you holding up?"]
GOODBYES = ["Anyway, I should sleep.", "Ok, got to run, talk later.", "I'm off to make dinner, bye!",
            "Right, back to work. Later!", "Night night."]
GOODBYE_REPLIES = ["Sleep well!", "Talk soon, take care.", "Enjoy your dinner!", "Good luck, see you later.",
                   "Night! Speak tomorrow."]
RELATIVES = ["mum", "dad", "gran", "aunt", "uncle", "cousin", "brother", "sister", "mother-in-law", "grandad"]
DISHES = ["lasagne", "dal", "fish tacos", "stir fry", "banana bread", "chilli", "gnocchi", "curry", "ramen"]
DOC_TOPICS = ["octopuses", "the deep sea", "ancient Rome", "bees", "volcanoes", "the moon landing", "fungi",
              "medieval castles", "glaciers", "sourdough", "birds of prey"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# Sentences built from parts, so that long conversations do not repeat the same lines.
SUBJECTS = ["I", "My flatmate", "The neighbour", "Our team", "My grandad", "The new manager", "We", "Half the office",
            "My cousin", "The kid next door", "My yoga teacher", "Everyone at the party", "The bus driver",
            "A guy at the shop", "My old teacher", "The landlord"]
VERBS = ["talked about", "worried about", "laughed at", "dreamed about", "argued over", "planned", "remembered",
         "complained about", "cooked", "painted", "forgot about", "wrote a song about", "read up on", "bought",
         "fixed", "posted about", "made a list about", "went on about"]
OBJECTS = ["a broken bicycle", "the thunderstorm", "an old photograph", "the football final", "a lemon cake",
           "the rent going up", "a lost umbrella", "the piano lesson", "the garden tomatoes", "a strange dream",
           "the hospital car park", "the chemistry exam", "a noisy concert", "the recycling rota", "a jigsaw puzzle",
           "the price of coffee", "a documentary about whales", "the broken lift", "a second-hand sofa",
           "the quiz night", "a street festival", "the new bakery", "a wasp nest", "the leaking tap",
           "a job advert", "the train strike", "a birthday card", "the school reunion", "a parking ticket"]
TAILS = ["", " yesterday", " for hours", " again this morning", " and it was hilarious", " while it rained",
         " over a cup of tea", " before bed", " at lunch", " all weekend", " on the phone", " for some reason"]
ASKS = ["How was the rest of your {part}?", "Did you get any rest after that?", "What's the plan for {weekday}?",
        "Are you still thinking about {object}?", "Did {name} ever reply?", "How's the {dish} situation?",
        "Is it still raining where you are?", "What would make tonight nicer?", "Did you sort out {object}?",
        "Have you eaten yet?", "Anything you're looking forward to this week?", "How did you sleep?",
        "Did you get outside at all today?", "Is work calmer now?", "What are you reading these days?"]
COMMENTS = ["Sounds like {subject_lower} had quite a day.", "I can picture it perfectly.", "That's a very you story.",
            "Honestly that would drive me up the wall too.", "I love how specific that is.",
            "There's always one person like that.", "That made me smile.", "Some days are just like that.",
            "You handled that better than most would.", "I'd have laughed out loud.", "That's a lot for one day.",
            "What a strange little moment.", "I'm glad you told me about it."]
PARTS_OF_DAY = ["morning", "afternoon", "evening", "day", "week"]
