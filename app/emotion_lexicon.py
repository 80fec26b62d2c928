"""The hand-written emotion lexicon: words, emoji, emoticons and role-play actions per emotion.

Stems are matched as word prefixes (`terrif` matches terrified, terrifying), so each entry
covers its inflections. Weights are 1 unless given; intensifiers scale the next cue, negators
flip or damp the cues in their scope.
"""

from __future__ import annotations

WORDS: dict[str, tuple[str, ...]] = {
    "joy": ("happy", "happi", "glad", "joy", "delight", "love", "loving", "lovely", "great", "awesome",
            "amazing", "wonderful", "fantastic", "excit", "thrill", "yay", "hooray", "grateful", "thank",
            "proud", "cheer", "fun", "enjoy", "beautiful", "best", "perfect", "smil", "laugh", "haha", "lol",
            "lmao", "congrat", "celebrat", "blessed", "relie", "pleas", "nice", "cute", "adore", "yes!",
            "brilliant", "excellent", "hope", "optimis", "content", "ecsta", "elat", "giggl", "grin", "hug"),
    "sadness": ("sad", "unhappy", "cry", "cried", "tear", "weep", "sob", "miss", "lonely", "alone", "grief",
                "griev", "mourn", "depress", "heartbr", "broken", "hurt", "pain", "sorrow", "loss", "lost",
                "died", "death", "dead", "funeral", "regret", "sorry", "disappoint", "hopeless", "miserable",
                "gloomy", "down", "awful", "unfortunat", "tragic", "poor", "sigh", "melanchol", "despair"),
    "anger": ("angry", "anger", "mad", "furious", "fury", "rage", "hate", "annoy", "irritat", "pissed",
              "outrag", "livid", "resent", "frustrat", "damn", "fuck", "wtf", "stupid", "idiot", "shut up",
              "ridiculous", "unfair", "bullshit", "screw", "hostil", "infuriat", "scream", "yell", "growl",
              "glare", "seeth", "fum", "bitter", "dumb", "moron"),
    "fear": ("afraid", "scared", "scare", "fear", "terrif", "horrif", "frighten", "panic", "anxious",
             "anxiety", "nervous", "worr", "dread", "creep", "spooky", "nightmare", "tremb", "shak", "shiver",
             "uneasy", "alarm", "threat", "danger", "unsafe", "phobia", "paranoi", "tense", "flinch", "cower"),
    "surprise": ("surpris", "wow", "whoa", "woah", "shock", "astonish", "amaz", "unexpected", "unbeliev",
                 "no way", "omg", "oh my", "really?", "what?!", "gasp", "stun", "speechless", "startl",
                 "can't believe", "cannot believe", "didn't expect", "blown away", "huh", "wait what"),
    "disgust": ("disgust", "gross", "eww", "ew", "yuck", "nasty", "vile", "repuls", "revolt", "sicken",
                "nause", "creepy", "filthy", "rotten", "stink", "disgrace", "pathetic", "cringe", "vomit",
                "puke", "appall", "abhor", "loath", "despicable", "sleaz"),
}

EMOJI: dict[str, str] = {
    "😀": "joy", "😃": "joy", "😄": "joy", "😁": "joy", "😆": "joy", "😂": "joy", "🤣": "joy", "😊": "joy",
    "🙂": "joy", "😍": "joy", "🥰": "joy", "😘": "joy", "❤": "joy", "💕": "joy", "🎉": "joy", "👍": "joy",
    "😢": "sadness", "😭": "sadness", "😞": "sadness", "😔": "sadness", "☹": "sadness", "🙁": "sadness",
    "💔": "sadness", "😿": "sadness", "😥": "sadness",
    "😠": "anger", "😡": "anger", "🤬": "anger", "💢": "anger", "👿": "anger",
    "😨": "fear", "😰": "fear", "😱": "fear", "😧": "fear", "😟": "fear", "😬": "fear",
    "😮": "surprise", "😯": "surprise", "😲": "surprise", "🤯": "surprise", "😳": "surprise",
    "🤢": "disgust", "🤮": "disgust", "😖": "disgust", "🙄": "disgust",
}

EMOTICONS: dict[str, str] = {
    ":)": "joy", ":-)": "joy", ":D": "joy", ":-D": "joy", "xD": "joy", "XD": "joy", "<3": "joy", "^^": "joy",
    ":(": "sadness", ":-(": "sadness", ":'(": "sadness", "T_T": "sadness", ";_;": "sadness", "</3": "sadness",
    ">:(": "anger", ">:-(": "anger", "D:": "fear", ":O": "surprise", ":o": "surprise", "O_O": "surprise",
    "o_O": "surprise", "ಠ_ಠ": "disgust",
}

INTENSIFIERS: dict[str, float] = {
    "so": 1.5, "very": 1.5, "really": 1.4, "extremely": 2.0, "incredibly": 1.8, "totally": 1.5, "absolutely": 1.7,
    "super": 1.5, "deeply": 1.7, "utterly": 1.8, "completely": 1.6, "truly": 1.4, "terribly": 1.6, "insanely": 1.8,
    "quietly": 0.8, "slightly": 0.6, "somewhat": 0.7, "a bit": 0.6, "kinda": 0.7, "little": 0.7, "mildly": 0.6,
}

NEGATORS = frozenset({"not", "no", "never", "n't", "dont", "don't", "isn't", "wasn't", "aren't", "can't",
                      "cannot", "won't", "hardly", "barely", "without", "nor", "neither", "ain't", "didn't",
                      "doesn't", "haven't", "hasn't"})

# A negated cue becomes evidence for this emotion (not happy -> sadness), with reduced weight.
NEGATED_TO: dict[str, str] = {"joy": "sadness", "sadness": "neutral", "anger": "neutral", "fear": "neutral",
                              "surprise": "neutral", "disgust": "neutral"}
