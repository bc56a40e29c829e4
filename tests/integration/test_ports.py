"""Ports for test and benchmark servers: distinct, free, and never an outgoing connection's."""

from tools.devservers.ports import _ephemeral_low, free_port, port_is_free


def test_free_ports_are_distinct_bindable_and_outside_the_range_of_outgoing_connections() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port < _ephemeral_low() and port_is_free(port) for port in ports)
