"""The public category list and the rules that map a source's wording onto it (data only).

Rules are tried in order against the upper-cased text; the first match wins. Sensitive
categories come first and are checked against every classification text of a row, so that
an incident mentioning a child anywhere (for example "CHILD - LURING" as the initial call
type) is suppressed whatever its final clearance says.

A row that no rule matches is unclassified and held back (publish.privacy.is_unclassified):
privacy fails closed. Wordings that are known and safe but fit no category (a premise check,
an assist to another agency) have a rule onto "other" in PUBLIC_RULES, so they are classified.
The rules match words and codes at word starts (`\b`), never inner substrings, and were
checked against the category lists of Seattle, Washington DC, Boston, Los Angeles and San
Francisco (tests/publish/test_category_coverage.py).
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
        r"|\bPEEP|\bEXPOSURE|\bPIMP|\bPANDER|\bHUMAN TRAFFICK|\bORAL COPULATION|\bSODOMY",
    ),
    # Abuse or neglect of an elderly or vulnerable adult is, like domestic violence, harm by
    # someone close to the victim; it shares the category (and its default suppression, also
    # on instances with their own BEATFEEDS_SUPPRESSED_CATEGORIES) rather than adding one.
    (
        "domestic-violence",
        r"\bDOMESTIC|(?<!NOT )(?<!NON-)\bDVU?\b|\bFAMILY VIOLENCE|\bINTIMATE PARTNER"
        r"|\bSPOUS|\bCOHABIT|\bDATING RELATIONSHIP"
        # Orders that protect a person, in every common wording: protection, protective,
        # restraining, no-contact and stay-away orders, an EPO, and court-order violations
        # (VIOL COURT ORDER - PROTECTION, CONTEMPT - PROTECTION ORDER, ORDER VIOLATION).
        r"|\bPROTECTI(?:ON|VE)\s*(?:-\s*)?ORDER|\bORDER\s+(?:OF|FOR)\s+PROTECTION"
        r"|\bCOURT ORDER|\bPROTECTION FROM ABUSE|\bPFA\b"
        r"|\bRESTRAINING\b|\bNO.CONTACT\b|\bSTAY.AWAY\b|\bEPO\b|\bORDER VIOL"
        r"|\bELDER(?:LY)?\b(?:\s+ADULT)?\s*(?:-\s*)?(?:ABUSE|NEGLECT|EXPLOIT)"
        r"|\bELDER ADULT|\bDEPENDENT(?: OR ELDER)? ADULT"
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
        r"\bCHI?LD|\bJUVENILE|\bJUV\b|\bMINOR\b(?!\s*(?:-\s*)?(?:INJUR|DAMAGE|COLLISION|ACCIDENT"
        r"|TRAFFIC|COMPLAINT|VIOLATION OF))|\bKIDNAP|\bSCHOOL\s+(THREAT|LOCKDOWN)"
        r"|\bSCHOOL GROUNDS|\bPARENTAL CONTROL|\bDELINQUEN|\bTRUAN|\bIMMORAL LIFE",
    ),
    (
        "behavioral-health",
        r"\bCRISIS|\bBEHAVIORAL HEALTH|\bSUICID|\bMENTAL|\bOVERDOSE"
        r"|\bINVOLUNTARY|\bDETOX|\bWELFARE CHECK|\bTARASOFF",
    ),
    (
        "medical",
        r"\bMEDIC(?:AL|S)?\b|\bAID RESPONSE|\bAIDED CASE\b(?!\s*(?:-\s*)?(?:PROPERTY|, DOG))|\bSICK PERSON|\bSICK ASSIST"
        r"|\bPERSON DOWN|\bDOWN PERSON"
        r"|\bMAN DOWN|\bINJURED PERSON|^INJURED\s*-|\bUNCONSCIOUS|\bCARDIAC",
    ),
    ("death", r"\bDEATH|\bDEAD BODY|\bDECEASED|\bCASUALT(?:Y|IES)\b|\bDOA\b|\bCORONER"),
]

PUBLIC_RULES: list[tuple[str, str]] = [
    ("false-alarm", r"ALACAD|FALSE ALARM|\bALARM"),
    (
        "collision",
        r"COLLISION|MOTOR VEHICLE ACCIDENT|MOTOR VEHICLE INCIDENT|\bMVC\b|\bMVA\b"
        r"|HIT AND RUN|ACCIDENT|\bACC\b|LEAVING SCENE",
    ),
    ("car-prowl", r"CAR PROWL|\bB&E\)? MOTOR VEHICLE|BREAKING AND ENTERING \(B&E\) MOTOR"),
    (
        "vehicle-theft",
        r"AUTO THEFT|VEHICLE THEFT|STOLEN (VEH|AUTO|CAR)|AUTO RECOVER|MOTOR VEHICLE THEFT"
        r"|RECOVERED VEHICLE|VEHICLE, RECOVERED|LICENSE PLATE, RECOVERED|\bDWOC\b"
        r"|DRIVING WITHOUT OWNER CONSENT",
    ),
    ("burglary", r"BURGLAR|\bBURG\b|BREAKING AND ENTERING"),
    ("robbery", r"ROBBERY"),
    (
        "assault",
        r"ASSAULT|\bASLT\b|FIGHT|SHOOTING|STABBING|HOMICIDE|DRIVE BY|AGGRAVATED|\bBATTERY\b"
        r"|\bMURDER|MANSLAUGHTER|\bAFFRAY\b",
    ),
    ("weapons", r"WEAPON|\bGUN|FIREARM|SHOTS"),
    (
        "theft",
        r"THEFT|SHOPLIFT|LARCENY|PICKPOCKET|PURSE SNATCH|\bBIKE\b|STOLEN|EMBEZZ|TILL TAP"
        r"|EVADING (?:PAYMENT OF .{0,20})?FARE",
    ),
    (
        "threats",
        r"THREAT|HARASS|INTIMIDAT|STALK|EXTORTION|BLACKMAIL|BOMB SCARE|REPORT OF BOMB"
        r"|OBSCENE (?:OR NUISANCE )?PHONE|DISSUADING",
    ),
    ("narcotics", r"NARCOTIC|\bDRUG"),
    (
        "liquor",
        r"LIQUOR|\bDUI\b|INTOX|\bOUI\b|UNDER THE INFLUENCE|UNDER INFLUENCE OF ALCOHOL"
        r"|DRUNKEN|OPEN CONTAINER|ALCOHOL, CONSUMING|LICENSE PREMISE",
    ),
    (
        "fraud",
        r"FRAUD|FORGER|BAD CHECK|IDENTITY|COUNTERFEIT|\bBUNCO\b|DOCUMENT WORTHLESS"
        r"|UNAUTHORIZED COMPUTER|IMPERSONATING",
    ),
    (
        "disturbance",
        r"DISTURBANCE|NUISANCE|NOISE|MISCHIEF|DISORDER|DISTURBING THE PEACE|VERBAL DISPUTE"
        r"|LANDLORD|CIVIL SIDEWALKS|\bBEGGING\b",
    ),
    (
        "property-damage",
        r"PROPERTY DAMAGE|VANDAL|GRAFFITI|DESTRUCTION|PROPERTY - DAMAGE|PROPERTY DEST\b"
        r"|\bARSON|TAMPERING WITH A VEHICLE|INJURY TO TELEGRAPH|THROWING (?:OBJECT|SUBSTANCE)",
    ),
    ("trespass", r"TRESPASS|PARKS EXCLUSION|PROWLER|LODGING WITHOUT PERMISSION|LOITERING WITHOUT"),
    (
        "traffic",
        r"TRAFFIC|PARKING|SPEED|RECKLESS|ROAD RAGE|\bTOWED\b|IMPOUNDED|\bVAL\b|AUTO LAW"
        r"|LICENSE,? (?:SUSPENDED|REVOKED)|DRIVERS LICENSE|NO LICENSE ISSUED|FAILURE TO YIELD"
        r"|OPERATING (?:AFTER|W/O)|VEHICLE REGISTRATION|EVADING A POLICE VEHICLE"
        r"|TRACK OF RAILROAD",
    ),
    ("suspicious", r"SUSPICIOUS"),
    ("hazards", r"HAZARD|FIRE\b|SMOKE|AIRCRAFT|FIREWORKS|EXPLOSIVE DEVICE|OFFENSIVE OR INJURIOUS"),
    ("animal", r"ANIMAL|\bDOGS?\b|STRAY"),
    (
        "lost-found",
        r"\bLOST\b|\bFOUND\b|MISSING|VEHICLE, MISPLACED|PROPERTY FOR IDENTIFICATION"
        r"|LOCATED PROPERTY",
    ),
    (
        "arrest",
        r"ARREST|WARRANT|INVESTIGATIVE DETENTION|RESISTING|OBSTRUCTING|PROBATION VIOLATION"
        r"|PAROLE VIOLATION|FUGITIVE|HARBOR FELON",
    ),
    # Known wordings that are safe to publish but fit no category: classified as "other".
    (
        "other",
        r"PREMISE CHECK|REQUEST TO WATCH|DIRECTED PATROL|\bASSIST (?:PUBLIC|OTHER AGENCY|SPD)"
        r"|SERVICE TO OTHER AGENCY|911 HANG UP|\bFOLLOW UP\b|CASE CLOSURE|COURTESY REPORT"
        r"|MISCELLANEOUS INVESTIGATION|OTHER MISCELLANEOUS CRIME|INVESTIGATE (?:PERSON|PROPERTY)"
        r"|MUNICIPAL (?:POLICE )?CODE|CITY ORDINANCE|PARK CODE|STATE (?:CODE )?(?:MISDEMEANOR|FELONY)"
        r"|MISCELLANEOUS STATE|\bCONSPIRACY\b|\bGAMBLING\b|\bPEDDLING\b|HARBOR INCIDENT"
        r"|ACTS AGAINST PUBLIC TRANSIT|PUBLIC TRANSIT, ACTS|AGAINST PUBLIC JUSTICE"
        r"|FALSE REPORT OF (?:CRIME|EMERGENCY)|TRASH, PLACING",
    ),
]

SENSITIVE = [(slug, re.compile(rx)) for slug, rx in SENSITIVE_RULES]
PUBLIC = [(slug, re.compile(rx)) for slug, rx in PUBLIC_RULES]
