"""Facts about Mexico that synthetic people must respect to look real: states, CURP rules.

Faker es_MX invents city names ("San Paulina los altos") and knows nothing of CURP state codes, so the few
facts that tie a state, its cities, its postal codes, its area codes and the CURP together live here.
"""

from __future__ import annotations

from operator import mul
from typing import NamedTuple


class State(NamedTuple):
    name: str
    curp_code: str  # the two letters a CURP carries for the state of birth
    zip_prefixes: tuple[int, int]  # first two digits of its postal codes, inclusive range
    cities: tuple[tuple[str, str], ...]  # (city, telephone area code)


STATES: tuple[State, ...] = (
    State("Aguascalientes", "AS", (20, 20), (("Aguascalientes", "449"),)),
    State("Baja California", "BC", (21, 22), (("Mexicali", "686"), ("Tijuana", "664"), ("Ensenada", "646"))),
    State("Baja California Sur", "BS", (23, 23), (("La Paz", "612"), ("Los Cabos", "624"))),
    State("Campeche", "CC", (24, 24), (("Campeche", "981"), ("Ciudad del Carmen", "938"))),
    State("Coahuila", "CL", (25, 27), (("Saltillo", "844"), ("Torreón", "871"))),
    State("Colima", "CM", (28, 28), (("Colima", "312"), ("Manzanillo", "314"))),
    State("Chiapas", "CS", (29, 30), (("Tuxtla Gutiérrez", "961"), ("Tapachula", "962"))),
    State("Chihuahua", "CH", (31, 33), (("Chihuahua", "614"), ("Ciudad Juárez", "656"))),
    State("Ciudad de México", "DF", (1, 16), (("Ciudad de México", "55"),)),
    State("Durango", "DG", (34, 35), (("Durango", "618"), ("Gómez Palacio", "871"))),
    State("Guanajuato", "GT", (36, 38), (("León", "477"), ("Guanajuato", "473"), ("Celaya", "461"))),
    State("Guerrero", "GR", (39, 41), (("Chilpancingo", "747"), ("Acapulco", "744"))),
    State("Hidalgo", "HG", (42, 43), (("Pachuca", "771"), ("Tulancingo", "775"))),
    State("Jalisco", "JC", (44, 49), (("Guadalajara", "33"), ("Zapopan", "33"), ("Puerto Vallarta", "322"))),
    State("México", "MC", (50, 57), (("Toluca", "722"), ("Ecatepec", "55"), ("Naucalpan", "55"))),
    State("Michoacán", "MN", (58, 61), (("Morelia", "443"), ("Uruapan", "452"))),
    State("Morelos", "MS", (62, 62), (("Cuernavaca", "777"), ("Cuautla", "735"))),
    State("Nayarit", "NT", (63, 63), (("Tepic", "311"),)),
    State("Nuevo León", "NL", (64, 67), (("Monterrey", "81"), ("San Nicolás de los Garza", "81"))),
    State("Oaxaca", "OC", (68, 71), (("Oaxaca de Juárez", "951"), ("Salina Cruz", "971"))),
    State("Puebla", "PL", (72, 75), (("Puebla", "222"), ("Tehuacán", "238"))),
    State("Querétaro", "QT", (76, 76), (("Querétaro", "442"), ("San Juan del Río", "427"))),
    State("Quintana Roo", "QR", (77, 77), (("Cancún", "998"), ("Chetumal", "983"))),
    State("San Luis Potosí", "SP", (78, 79), (("San Luis Potosí", "444"),)),
    State("Sinaloa", "SL", (80, 82), (("Culiacán", "667"), ("Mazatlán", "669"))),
    State("Sonora", "SR", (83, 85), (("Hermosillo", "662"), ("Ciudad Obregón", "644"))),
    State("Tabasco", "TC", (86, 86), (("Villahermosa", "993"),)),
    State("Tamaulipas", "TS", (87, 89), (("Ciudad Victoria", "834"), ("Tampico", "833"), ("Reynosa", "899"))),
    State("Tlaxcala", "TL", (90, 90), (("Tlaxcala", "246"), ("Apizaco", "241"))),
    State("Veracruz", "VZ", (91, 96), (("Xalapa", "228"), ("Veracruz", "229"), ("Coatzacoalcos", "921"))),
    State("Yucatán", "YN", (97, 97), (("Mérida", "999"), ("Valladolid", "985"))),
    State("Zacatecas", "ZS", (98, 99), (("Zacatecas", "492"), ("Fresnillo", "493"))),
)

# RENAPO's "palabras inconvenientes": a CURP never starts with one; its second letter becomes X instead.
_INCONVENIENT = """
    BACA BAKA BUEI BUEY CACA CACO CAGA CAGO CAKA CAKO COGE COGI COJA COJE COJI COJO COLA CULO FALO FETO
    GETA GUEI GUEY JETA JOTO KACA KACO KAGA KAGO KAKA KAKO KOGE KOGI KOJA KOJE KOJI KOJO KOLA KULO LILO
    LOCA LOCO LOKA LOKO MAME MAMO MEAR MEAS MEON MIAR MION MOCO MOKO MULA MULO NACA NACO PEDA PEDO PENE
    PIPI PITO POPO PUTA PUTO QULO RATA ROBA ROBE ROBO RUIN SENO TETA VACA VAGA VAGO VAKA VUEI VUEY WUEI WUEY
"""
CURP_BLACKLIST = frozenset(_INCONVENIENT.split())

# Words a CURP skips in compound names: "María de la Luz" is filed under LUZ, "de la Cruz" under CRUZ.
_PARTICLES = "DA DAS DE DEL DER DI DIE DD EL LA LOS LAS LE LES MAC MC VAN VON Y"
CURP_PARTICLES = frozenset(_PARTICLES.split())
CURP_COMMON_FIRST = frozenset({"JOSE", "J", "MARIA", "MA", "M"})  # abbreviations lose their dot first

_CURP_ALPHABET = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ"
_CURP_VALUE = {c: i for i, c in enumerate(_CURP_ALPHABET)}.__getitem__
_CURP_WEIGHTS = tuple(range(18, 1, -1))


def curp_check_digit(first17: str) -> str:
    """The 18th CURP character, computed as RENAPO (and python-stdnum) do."""
    total = sum(map(mul, map(_CURP_VALUE, first17), _CURP_WEIGHTS))
    return str((10 - total % 10) % 10)
