"""API keys: random, stored only as a hash, checked in constant time; keyed order ids."""

import itertools

import pytest

from shared import accounts
from shared.accounts import AccountError
from shared.ids import order_id_for_client_key, is_order_id


def counting_bytes():
    counter = itertools.count()
    return lambda n: bytes(next(counter) % 256 for _ in range(n))


def test_a_new_key_names_its_record_and_the_record_holds_only_its_hash():
    key, record = accounts.new_key("desk-1", 1_000)
    assert accounts.key_id_of(key) == record.key_id
    assert key not in record.key_hash and record.key_hash == accounts.hash_key(key)
    assert accounts.verify(key, record)
    assert record.account == "desk-1" and record.active


def test_two_keys_differ():
    first, _ = accounts.new_key("a", 1)
    second, _ = accounts.new_key("a", 1)
    assert first != second


@pytest.mark.parametrize("mangle", [
    lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
    lambda k: k + "\n",
    lambda k: " " + k,
    lambda k: k.upper(),
    lambda k: k[:20],
])
def test_a_changed_key_is_refused(mangle):
    key, record = accounts.new_key("a", 1, random_bytes=counting_bytes())
    bad = mangle(key)
    assert accounts.key_id_of(bad) is None or not accounts.verify(bad, record)


def test_a_revoked_key_is_refused():
    key, record = accounts.new_key("a", 1)
    import msgspec
    assert not accounts.verify(key, msgspec.structs.replace(record, revoked_at=2))


@pytest.mark.parametrize("name", ["", "Local", "-x", "a" * 65, "a b", "ä", "a\n"])
def test_account_names_are_checked(name):
    with pytest.raises(AccountError):
        accounts.new_key(name, 1)


def test_keyed_order_ids_depend_on_the_secret_and_the_account():
    base = order_id_for_client_key(b"s" * 32, "alice", "order-1")
    assert is_order_id(base)
    assert base == order_id_for_client_key(b"s" * 32, "alice", "order-1")
    assert base != order_id_for_client_key(b"t" * 32, "alice", "order-1")
    assert base != order_id_for_client_key(b"s" * 32, "bob", "order-1")
    # No ambiguity between an account name and a key that share characters.
    assert order_id_for_client_key(b"s", "a", "b-c") != order_id_for_client_key(b"s", "a-b", "c")


@pytest.mark.parametrize("value", ["abc\n", "", "a" * 65, "a/b", "a.b", "a b"])
def test_order_ids_outside_the_alphabet_are_refused(value):
    assert not is_order_id(value)
