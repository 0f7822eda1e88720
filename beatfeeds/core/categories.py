"""The public category list and the rules that map a source's wording onto it (data only).

Rules are tried in order against the upper-cased text; the first match wins. Sensitive
categories come first and are checked against every classification text of a row, so that
an incident mentioning a child anywhere (for example "CHILD - LURING" as the initial call
type) is suppressed whatever its final clearance says.
"""

import re

# slug -> label shown to residents
CATEGORIES: dict[str, str] = {
    "sexual-offense": "Sexual offense",
    "domestic-violence": "Domestic violence",
    "missing-person": "Missing person",
    "juvenile": "Juvenile or child matter",
    "behavioral-health": "Behavioral health",
    "medical": "Medical",
    "death": "Death investigation",
    "false-alarm": "False alarm",
    "collision": "Traffic collision",
    "car-prowl": "Car prowl",
    "vehicle-theft": "Vehicle theft",
    "burglary": "Burglary",
    "robbery": "Robbery",
    "assault": "Assault",
    "weapons": "Weapons",
    "theft": "Theft",
    "threats": "Threats and harassment",
    "narcotics": "Narcotics",
    "liquor": "Liquor and DUI",
    "fraud": "Fraud",
    "disturbance": "Disturbance and nuisance",
    "property-damage": "Property damage",
    "trespass": "Trespass",
    "traffic": "Traffic and parking",
    "suspicious": "Suspicious circumstances",
    "hazards": "Hazards",
    "animal": "Animal",
    "lost-found": "Lost and found property",
    "arrest": "Arrest or warrant",
    "other": "Other",
    # Department announcements (beatfeeds.services.announcements), never incident classifications.
    "announcement-alert": "Announcement: public-safety alert",
    "announcement-road-closure": "Announcement: road closure",
    "announcement-missing-person": "Announcement: missing person",
    "announcement-prevention-tip": "Announcement: crime-prevention tip",
    "announcement-community-event": "Announcement: community event",
    "announcement-department-update": "Announcement: department update",
}

SENSITIVE_RULES: list[tuple[str, str]] = [
    (
        "sexual-offense",
        r"\bRAPE|\bSEX|\bLEWD|\bINDECEN|\bPROSTITUT|\bMOLEST|\bPORN|\bVOYEUR"
        r"|\bPEEP|\bEXPOSURE|\bPIMP|\bHUMAN TRAFFICK",
    ),
    # Abuse or neglect of an elderly or vulnerable adult is, like domestic violence, harm by
    # someone close to the victim; it shares the category (and its default suppression, also
    # on instances with their own BEATFEEDS_SUPPRESSED_CATEGORIES) rather than adding one.
    (
        "domestic-violence",
        r"\bDOMESTIC|\bDV\b|\bFAMILY VIOLENCE|\bPROTECTION ORDER"
        r"|\bNO.CONTACT ORDER|\bORDER VIOLATION"
        r"|\bELDER(?:LY)?\s*(?:-\s*)?(?:ABUSE|NEGLECT|EXPLOIT)"
        r"|\bVULNERABLE ADULT|\bADULT (?:ABUSE|NEGLECT)",
    ),
    (
        "missing-person",
        r"\bMISSING\s*-\s*(?:\(|CHILD|ADULT|PERSON)|\bPERSONS?\s*-\s*LOST"
        r"|\bMISSING PERSON|\bRUNAWAY|\bAMBER ALERT|\bSILVER ALERT|\bALZHEIMER"
        r"|\bFOUND\s*-?\s*PERSON",
    ),
    # MINOR is a child only where it does not qualify an injury or a collision.
    (
        "juvenile",
        r"\bCHILD|\bJUVENILE|\bMINOR\b(?!\s*(?:-\s*)?(?:INJUR|DAMAGE|COLLISION|ACCIDENT"
        r"|TRAFFIC|COMPLAINT|VIOLATION OF))|\bKIDNAP|\bSCHOOL\s+(THREAT|LOCKDOWN)",
    ),
    (
        "behavioral-health",
        r"\bCRISIS|\bBEHAVIORAL HEALTH|\bSUICID|\bMENTAL|\bOVERDOSE"
        r"|\bINVOLUNTARY|\bDETOX|\bWELFARE CHECK",
    ),
    (
        "medical",
        r"\bMEDIC(?:AL|S)?\b|\bAID RESPONSE|\bSICK PERSON|\bPERSON DOWN|\bDOWN PERSON"
        r"|\bMAN DOWN|\bINJURED PERSON|^INJURED\s*-|\bUNCONSCIOUS|\bCARDIAC",
    ),
    ("death", r"\bDEATH|\bDEAD BODY|\bDECEASED|\bCASUALT(?:Y|IES)\b|\bDOA\b|\bCORONER"),
]

PUBLIC_RULES: list[tuple[str, str]] = [
    ("false-alarm", r"ALACAD|FALSE ALARM|\bALARM"),
    (
        "collision",
        r"COLLISION|MOTOR VEHICLE ACCIDENT|MOTOR VEHICLE INCIDENT|\bMVC\b|\bMVA\b"
        r"|HIT AND RUN|ACCIDENT",
    ),
    ("car-prowl", r"CAR PROWL"),
    (
        "vehicle-theft",
        r"AUTO THEFT|VEHICLE THEFT|STOLEN (VEH|AUTO|CAR)|AUTO RECOVER|MOTOR VEHICLE THEFT",
    ),
    ("burglary", r"BURGLAR|\bBURG\b"),
    ("robbery", r"ROBBERY"),
    ("assault", r"ASSAULT|\bASLT\b|FIGHT|SHOOTING|STABBING|HOMICIDE|DRIVE BY|AGGRAVATED"),
    ("weapons", r"WEAPON|\bGUN|FIREARM|SHOTS"),
    ("theft", r"THEFT|SHOPLIFT|LARCENY|PICKPOCKET|PURSE SNATCH|\bBIKE\b|STOLEN|EMBEZZ"),
    ("threats", r"THREAT|HARASS|INTIMIDAT|STALK"),
    ("narcotics", r"NARCOTIC|\bDRUG"),
    ("liquor", r"LIQUOR|\bDUI\b|INTOX"),
    ("fraud", r"FRAUD|FORGER|BAD CHECK|IDENTITY|COUNTERFEIT"),
    ("disturbance", r"DISTURBANCE|NUISANCE|NOISE|MISCHIEF|DISORDER"),
    ("property-damage", r"PROPERTY DAMAGE|VANDAL|GRAFFITI|DESTRUCTION"),
    ("trespass", r"TRESPASS|PARKS EXCLUSION|PROWLER"),
    ("traffic", r"TRAFFIC|PARKING|SPEED|RECKLESS|ROAD RAGE"),
    ("suspicious", r"SUSPICIOUS"),
    ("hazards", r"HAZARD|FIRE\b|SMOKE"),
    ("animal", r"ANIMAL|\bDOGS?\b|STRAY"),
    ("lost-found", r"\bLOST\b|\bFOUND\b|MISSING"),
    ("arrest", r"ARREST|WARRANT"),
]

SENSITIVE = [(slug, re.compile(rx)) for slug, rx in SENSITIVE_RULES]
PUBLIC = [(slug, re.compile(rx)) for slug, rx in PUBLIC_RULES]
