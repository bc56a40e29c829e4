"""Generated credentials of a local stack: one NATS user per service plus admin, two database roles.

`make run` keeps them in `.run/credentials.json` (mode 0600), made at its first start and
reused after; test fixtures and `bench --spawn` make throw-away ones. `service_env` is
what each service is started with: its own NATS user and, for the gateway and the
projector only, a database URL naming the reader or the writer role.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import msgspec

from shared.natsauth import USERS
from tools import pgroles


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    nats: dict[str, str]  # user -> password
    reader_password: str
    writer_password: str


def generate() -> Credentials:
    return Credentials(
        nats={user: secrets.token_urlsafe(24) for user in USERS},
        reader_password=secrets.token_urlsafe(24),
        writer_password=secrets.token_urlsafe(24),
    )


def load_or_create(path: Path) -> Credentials:
    """The credentials kept in `path`, created (mode 0600) if it does not exist yet."""
    if path.is_file():
        found = msgspec.json.decode(path.read_bytes(), type=Credentials)
        if set(found.nats) >= set(USERS):
            return found
    creds = generate()
    write_private(path, msgspec.json.encode(creds))
    return creds


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only, never visible with wider rights."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def role_url(admin_url: str, role: str, password: str) -> str:
    """`admin_url` with `role` and `password` in place of its user."""
    parts = urlsplit(admin_url)
    host = parts.hostname or ""
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def service_env(creds: Credentials, service: str, *, admin_database_url: str | None) -> dict[str, str]:
    """NATS_USER/NATS_PASSWORD and, for gateway and projector, the role's DATABASE_URL."""
    env = {"NATS_USER": service, "NATS_PASSWORD": creds.nats[service]}
    if admin_database_url is not None:
        if service == "gateway":
            env["DATABASE_URL"] = role_url(admin_database_url, pgroles.READER, creds.reader_password)
        elif service == "projector":
            env["DATABASE_URL"] = role_url(admin_database_url, pgroles.WRITER, creds.writer_password)
    return env


# Deployments: passwords come from the environment (compose's .env, a Kubernetes Secret).

#: The environment variable holding each NATS user's password in compose and Kubernetes.
PASSWORD_VARIABLES = {user: f"NATS_PASSWORD_{user.upper()}" for user in USERS}


def deployed_authorization() -> str:
    """nats-server's `authorization` block for compose and Kubernetes: passwords from `$VARIABLES`."""
    from shared.natsauth import authorization
    from shared.topology import Topology

    refs = {user: f"${variable}" for user, variable in PASSWORD_VARIABLES.items()}
    return authorization(Topology(), refs)


def compose_env(creds: Credentials) -> str:
    """The `.env` compose reads: every password the stack needs, generated here."""
    lines = [f"{PASSWORD_VARIABLES[user]}={password}" for user, password in creds.nats.items()]
    lines += [
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}",
        f"READER_DATABASE_PASSWORD={creds.reader_password}",
        f"WRITER_DATABASE_PASSWORD={creds.writer_password}",
    ]
    return "\n".join(lines) + "\n"


def kubernetes_secrets(creds: Credentials, *, namespace: str, database_host: str, admin_url: str) -> str:
    """`kubectl create secret` commands for the engine's two Secrets (printed, never stored)."""
    nats = " \\\n  ".join(f"--from-literal={PASSWORD_VARIABLES[u]}={p}" for u, p in creds.nats.items())
    reader = f"postgresql://{pgroles.READER}:{creds.reader_password}@{database_host}/engine"
    writer = f"postgresql://{pgroles.WRITER}:{creds.writer_password}@{database_host}/engine"
    return (
        f"kubectl -n {namespace} create secret generic engine-nats-users \\\n  {nats}\n"
        f"kubectl -n {namespace} create secret generic engine-database \\\n"
        f"  --from-literal=READER_DATABASE_URL={reader} \\\n"
        f"  --from-literal=WRITER_DATABASE_URL={writer} \\\n"
        f"  --from-literal=READER_DATABASE_PASSWORD={creds.reader_password} \\\n"
        f"  --from-literal=WRITER_DATABASE_PASSWORD={creds.writer_password} \\\n"
        f"  --from-literal=SETUP_DATABASE_URL={admin_url}\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Generate deployment credentials: compose's `.env`, Kubernetes Secrets, nats-server's users."""
    import argparse
    import sys

    cli = argparse.ArgumentParser(prog="python -m tools.credentials", description=main.__doc__)
    sub = cli.add_subparsers(dest="action", required=True)
    env = sub.add_parser("compose-env", help="write .env with generated passwords for compose.yaml (kept if present)")
    env.add_argument("--path", default=".env")
    k8s = sub.add_parser("k8s-secrets", help="print kubectl commands creating the Secrets, with generated passwords")
    k8s.add_argument("--namespace", default="dex-engine")
    k8s.add_argument("--database-host", default="postgres:5432", help="host:port of PostgreSQL as the pods see it")
    k8s.add_argument("--admin-url", required=True, help="admin (CREATEROLE) URL the set-up Job creates the roles with")
    auth = sub.add_parser("nats-auth", help="print the authorization block of deploy/nats/auth.conf and the k8s ConfigMap")
    auth.add_argument("--write", action="store_true", help="write it into both files, and the table into deploy/README.md")
    args = cli.parse_args(argv)
    if args.action == "compose-env":
        path = Path(args.path)
        if path.exists():
            print(f"{path} exists; kept as it is", file=sys.stderr)
            return 0
        write_private(path, compose_env(generate()).encode())
        print(f"wrote {path} (mode 0600)", file=sys.stderr)
    elif args.action == "k8s-secrets":
        print(kubernetes_secrets(generate(), namespace=args.namespace, database_host=args.database_host,
                                 admin_url=args.admin_url), end="")
    elif args.write:
        write_deployed_authorization(Path(__file__).resolve().parents[1] / "deploy")
    else:
        print(deployed_authorization(), end="")
    return 0


def write_deployed_authorization(deploy: Path) -> None:
    """Put the current table into deploy/nats/auth.conf, the NATS ConfigMap and deploy/README.md."""
    from shared.natsauth import markdown_table
    from shared.topology import Topology

    block = deployed_authorization()
    auth = deploy / "nats" / "auth.conf"
    text = auth.read_text()
    auth.write_text(text[: text.index("authorization {")] + block)
    configmap = deploy / "k8s" / "nats" / "configmap.yaml"
    text = configmap.read_text()
    indented = "".join(f"    {line}\n" if line else "\n" for line in block.rstrip("\n").split("\n"))
    configmap.write_text(text[: text.index("    authorization {")] + indented)
    readme = deploy / "README.md"
    text = readme.read_text()
    start = text.index("| User | May publish | May subscribe |")
    end = text.index("\nNotes:", start)
    readme.write_text(text[:start] + markdown_table(Topology()) + text[end:])


if __name__ == "__main__":
    raise SystemExit(main())
