"""``contract.settings``: where the MQTT credentials come from."""

from __future__ import annotations

from contract.settings import Settings


def test_mqtt_auth_prefers_its_own_fields_over_the_url() -> None:
    assert Settings(mqtt_url="mqtt://u:p@h:1883").mqtt_auth == ("u", "p")
    assert Settings(mqtt_url="mqtt://h:1883", mqtt_username="svc",
                    mqtt_password="a@b:c/d").mqtt_auth == ("svc", "a@b:c/d")
    assert Settings(mqtt_url="mqtt://h:1883").mqtt_auth == (None, None)
    assert Settings().mqtt_auth == (None, None)
