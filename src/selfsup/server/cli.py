"""``selfsup serve`` and ``selfsup token``: run the server, manage users' API tokens.

    selfsup serve --db sqlite:///srv.db --local-root /data --port 8000
    selfsup token create --user alice            # prints the token once
    selfsup token list
    selfsup token revoke 3f2a9c01b7de
    selfsup token roots --user alice --add /data/alice   # alice's own LOCAL folders
    selfsup serve rotate-key                     # re-encrypt credentials with a new key

Both read the database from ``--db``, else ``$SELFSUP_DATABASE_URL``, else the SQLite file
``$SELFSUP_HOME/server.db``. Errors exit with status 2 and a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from selfsup.apphelpers.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_UPLOAD_BYTES
from selfsup.apphelpers.network import is_loopback
from selfsup.errors import ConfigError
from selfsup.home import selfsup_home
from selfsup.server.settings import (
    ServerSettings,
    default_database_url,
    default_local_roots,
    now_ms,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

EXIT_USAGE = 2


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup serve",
        description="Run the selfsup job server (API for ApiWorkflowClient and selfsup worker).",
    )
    parser.add_argument(
        "--db",
        default=None,
        help="database URL: sqlite:///path.db or postgresql+psycopg://user:pass@host/db "
        "(default: $SELFSUP_DATABASE_URL or sqlite:///$SELFSUP_HOME/server.db)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="folder for artifacts and logs (default: $SELFSUP_HOME/server)",
    )
    parser.add_argument(
        "--local-root",
        action="append",
        type=Path,
        default=None,
        metavar="DIR",
        help="allow LOCAL datasources inside DIR for EVERY user (repeatable; default: "
        "$SELFSUP_LOCAL_ROOTS); give users their own folders with 'selfsup token roots'",
    )
    parser.add_argument(
        "--lease-seconds",
        type=float,
        default=120.0,
        help="a run whose worker sent no heartbeat for this long is marked CRASHED",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=3,
        help="claims of a scheduled run before a crash is final",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest request body but an artifact upload, checked before it is read "
        f"(default: {DEFAULT_MAX_BODY_BYTES}, 1 MiB)",
    )
    parser.add_argument(
        "--max-upload-bytes",
        type=int,
        default=DEFAULT_MAX_UPLOAD_BYTES,
        help="largest artifact upload; uploads need a valid token before they are read "
        f"(default: {DEFAULT_MAX_UPLOAD_BYTES}, 8 GiB)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="server log level",
    )
    return parser


def serve_main(
    argv: Sequence[str] | None = None,
    app_factory: Callable[[ServerSettings], FastAPI] | None = None,
) -> int:
    """Entry point of ``selfsup serve`` (and ``selfsup serve rotate-key``); returns the exit
    status.

    Args:
        argv: the command's arguments (default: ``sys.argv[1:]``).
        app_factory: builds the app to serve from the settings; ``selfsup serve`` passes
            :func:`selfsup.cli.apps.create_server_app` (API and web app), the default is the
            API alone (:func:`selfsup.server.app.create_app`).
    """
    import uvicorn

    from selfsup.apphelpers.access_log import uvicorn_log_config
    from selfsup.server.app import create_app
    from selfsup.server.db import parse_database_url

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["rotate-key"]:
        return rotate_key_main(argv[1:])
    args = _serve_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        database_url = args.db or default_database_url()
        parse_database_url(database_url)
        settings = ServerSettings(
            database_url=database_url,
            data_dir=args.data_dir or selfsup_home() / "server",
            local_roots=tuple(args.local_root) if args.local_root else default_local_roots(),
            lease_seconds=args.lease_seconds,
            max_attempts=args.max_attempts,
            max_body_bytes=args.max_body_bytes,
            max_upload_bytes=args.max_upload_bytes,
        )
        app = (app_factory or create_app)(settings)
    except (ConfigError, ValueError) as exc:
        print(f"selfsup serve: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OperationalError as exc:
        print(f"selfsup serve: error: cannot open the database: {exc.orig}", file=sys.stderr)
        return EXIT_USAGE
    if not is_loopback(args.host):
        print(
            f"selfsup serve: warning: listening on {args.host} without TLS; API tokens and "
            "datasource credentials cross the network in clear unless a TLS proxy is in front",
            file=sys.stderr,
        )
    shared = ", ".join(str(r) for r in settings.local_roots)
    roots = (
        f"{shared} (shared by ALL users: each can read what the others keep there)"
        if shared
        else "none shared (per-user roots only: selfsup token roots --user NAME --add DIR)"
    )
    print(
        f"selfsup serve: http://{args.host}:{args.port}  data: {settings.data_dir}  "
        f"local roots: {roots}",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        log_config=uvicorn_log_config(),  # token= values never reach the access log
    )
    return 0


def _rotate_key_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup serve rotate-key",
        description="Re-encrypt every stored datasource credential with a new key. Stop the "
        "server first and start it again afterwards. With the key file (<data dir>/"
        "secret.key) a new key is made, every row re-encrypted, and the old keys dropped "
        "(--keep-old-keys keeps them as fallbacks). With $SELFSUP_SECRET_KEY, put the new key "
        "first (new,old), run this, then remove the old key from the variable.",
    )
    parser.add_argument("--db", default=None, help="database URL (as for selfsup serve)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the server's data folder holding secret.key (default: $SELFSUP_HOME/server)",
    )
    parser.add_argument(
        "--keep-old-keys",
        action="store_true",
        help="keep the old keys in the key file after the new one (to open old backups)",
    )
    return parser


def rotate_key_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``selfsup serve rotate-key``; returns the exit status."""
    from cryptography.fernet import Fernet

    from selfsup.server.db import make_engine, upgrade_database
    from selfsup.server.secret_keys import (
        SecretKeys,
        attach_keys,
        check_keys_open_the_database,
        load_keys,
        rotate_credentials,
        write_key_file,
    )

    args = _rotate_key_parser().parse_args(argv)
    prog = "selfsup serve rotate-key"
    data_dir = args.data_dir or selfsup_home() / "server"
    try:
        old = load_keys(data_dir, create=False)
        if old is None:
            print(
                f"{prog}: error: no key file {data_dir / 'secret.key'} and no "
                "$SELFSUP_SECRET_KEY: nothing to rotate (the server makes the key on its "
                "first start; give --data-dir if it uses another folder)",
                file=sys.stderr,
            )
            return EXIT_USAGE
        engine = make_engine(args.db or default_database_url())
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        attach_keys(engine, old)
        upgrade_database(engine)
        check_keys_open_the_database(engine, old)
        if old.path is None:  # $SELFSUP_SECRET_KEY: the admin put the new key first
            count = rotate_credentials(engine, old)
            print(
                f"{prog}: {count} datasource credentials re-encrypted with the first key of "
                "$SELFSUP_SECRET_KEY; remove the old keys from it now",
                file=sys.stderr,
            )
            return 0
        new_key = Fernet.generate_key()
        both = SecretKeys((new_key, *old.keys), old.source, old.path)
        # New key first, old ones after: a crash from here on leaves a key file that opens
        # every row, whichever key encrypted it.
        write_key_file(old.path, both.keys)
        count = rotate_credentials(engine, both)
        if not args.keep_old_keys:
            write_key_file(old.path, (new_key,))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        print(f"{prog}: error: cannot open the database: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()
    kept = " (old keys kept after it)" if args.keep_old_keys else ""
    print(
        f"{prog}: {count} datasource credentials re-encrypted with a new key in "
        f"{old.path}{kept}; restart the server",
        file=sys.stderr,
    )
    return 0


def _roots_action(session: Session, args: argparse.Namespace) -> int:
    """``selfsup token roots``: change (with --add/--remove) and print a user's own roots."""
    from selfsup.server.roots import change_roots, roots_of_user

    try:
        if args.add or args.remove:
            roots = change_roots(session, args.user, args.add, args.remove, now_ms())
            session.commit()
        else:
            roots = roots_of_user(session, args.user)
    except (LookupError, ValueError) as exc:
        print(f"selfsup token: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for root in roots:
        if not root.is_dir():
            print(f"selfsup token: warning: root {root} is not a folder (yet)", file=sys.stderr)
        print(root)
    print(
        f"{len(roots)} own root(s) of user {args.user!r}; the serve --local-root folders are "
        "shared by every user on top of these",
        file=sys.stderr,
    )
    return 0


def _token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfsup token", description="Manage users and their API tokens."
    )
    parser.add_argument("--db", default=None, help="database URL (as for selfsup serve)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the server's data folder, for its secret.key when the database needs a "
        "migration (default: $SELFSUP_HOME/server)",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a token (and the user if new); prints it once")
    create.add_argument("--user", required=True, help="user name")
    create.add_argument(
        "--scope",
        default="all",
        choices=["all", "user", "worker"],
        help="user: client endpoints; worker: worker endpoints (datasource credentials); "
        "all: both (default)",
    )
    create.add_argument("--name", default="", help="a note to recognise the token by")
    listing = sub.add_parser("list", help="list tokens (never their secret)")
    listing.add_argument("--user", default=None, help="only this user's tokens")
    revoke = sub.add_parser("revoke", help="revoke a token by its id (the 12 hex digits)")
    revoke.add_argument("token_id")
    roots = sub.add_parser(
        "roots",
        help="list, add or remove the folders a user's LOCAL datasources may point inside "
        "(besides the --local-root folders shared by every user)",
    )
    roots.add_argument("--user", required=True, help="user name")
    roots.add_argument(
        "--add", action="append", default=[], metavar="DIR", help="allow DIR (repeatable)"
    )
    roots.add_argument(
        "--remove", action="append", default=[], metavar="DIR", help="disallow DIR (repeatable)"
    )
    return parser


def token_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``selfsup token``; returns the exit status."""
    from selfsup.server.auth import issue_token, split_token
    from selfsup.server.db import make_engine, session_factory, upgrade_database
    from selfsup.server.models import ApiToken, User
    from selfsup.server.secret_keys import attach_keys, load_keys

    args = _token_parser().parse_args(argv)
    try:
        keys = load_keys(args.data_dir or selfsup_home() / "server", create=False)
        engine = make_engine(args.db or default_database_url())
        attach_keys(engine, keys)
        upgrade_database(engine)
    except ConfigError as exc:
        print(f"selfsup token: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        print(f"selfsup token: error: cannot open the database: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        with session_factory(engine)() as session:
            if args.action == "create":
                try:
                    issued = issue_token(session, args.user, args.scope, now_ms(), args.name)
                except ValueError as exc:
                    print(f"selfsup token: error: {exc}", file=sys.stderr)
                    return EXIT_USAGE
                session.commit()
                print(
                    f"token {issued.id} for user {issued.user_name!r} "
                    f"(scopes: {', '.join(issued.scopes)}); it is shown only once:",
                    file=sys.stderr,
                )
                print(issued.token)
                return 0
            if args.action == "list":
                query = select(ApiToken, User).join(User, ApiToken.user_id == User.id)
                if args.user:
                    query = query.where(User.name == args.user)
                rows = session.execute(query.order_by(User.name, ApiToken.created_at)).all()
                print(f"{'ID':<14}{'USER':<20}{'SCOPES':<14}{'STATUS':<9}NAME")
                for token, user in rows:
                    status = "revoked" if token.revoked_at is not None else "active"
                    print(f"{token.id:<14}{user.name:<20}{token.scopes:<14}{status:<9}{token.name}")
                return 0
            if args.action == "roots":
                return _roots_action(session, args)
            token_id = args.token_id
            parts = split_token(token_id)
            if parts is not None:  # a whole token was pasted: use its id, print nothing secret
                token_id = parts[0]
            row = session.get(ApiToken, token_id)
            if row is None:
                print(f"selfsup token: error: no token with id {token_id!r}", file=sys.stderr)
                return EXIT_USAGE
            if row.revoked_at is None:
                row.revoked_at = now_ms()
                session.commit()
            print(f"token {token_id} revoked", file=sys.stderr)
            return 0
    finally:
        engine.dispose()
