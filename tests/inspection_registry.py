"""A small registry for the inspection tests: two bureaus of county 370102, an enterprise
site there and four entities of credit classes A-D in it."""

from __future__ import annotations

import json

import psycopg

ECO = "370102-ecology-environment"
NAT = "370102-natural-resources"
SQUARE = {"type": "Polygon", "coordinates": [[[117, 36], [117.1, 36], [117.1, 36.1],
                                              [117, 36.1], [117, 36]]]}
ENTITIES = {"ent-a": "A", "ent-b": "B", "ent-c": "C", "ent-d": "D"}


def registry(db: str) -> None:
    """Two bureaus of county 370102, an enterprise site there, four entities in it."""
    with psycopg.connect(db) as conn:
        for dept, name in ((ECO, "历下区生态环境分局"), (NAT, "历下区自然资源局")):
            conn.execute("INSERT INTO departments (id, name) VALUES (%s, %s)"
                         " ON CONFLICT DO NOTHING", (dept, name))
        conn.execute("INSERT INTO zones (id, kind, name, county, owner_dept, geometry)"
                     " VALUES ('es-1', 'enterprise_site', '园区', '370102', %s, %s)",
                     (ECO, json.dumps(SQUARE)))
        for ent, cls in ENTITIES.items():
            conn.execute("INSERT INTO entities (id, name, credit_class, owner_dept, zones)"
                         " VALUES (%s, %s, %s, %s, '{es-1}')", (ent, f"企业{ent}", cls, ECO))
        conn.execute("INSERT INTO stations (id, owner_dept, entity) VALUES ('st-d', %s, 'ent-d')",
                     (NAT,))
