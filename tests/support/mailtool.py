#!/usr/bin/env python3
"""Mail made and read by tools teleavis did not write: Python's email/smtplib/imaplib and the
`openssl cms` command. Used by the Rust tests (tests/common/mod.rs) and the demo.

  send    --host H --port P [--starttls|--ssl] [--user U --password W] [--cert C --key K]
          [--cafile CA] --from A --to B [--to C]... FILE|-
          Sends the bytes as they are (no rewriting); exit 1 if the server refuses.
  fetch   --port P --cafile CA (--user U --password W | --cert C --key K) [--mailbox M] --out DIR
          Over IMAPS; writes each message's raw bytes to DIR/<uid>.eml and prints a JSON list
          [{uid, file, flags}]. Does not set \\Seen.
  count   --port P --cafile CA (--user U --password W | --cert C --key K)
          JSON {mailbox: n}: INBOX, Traités, Quarantaine (0 when missing) and every other folder.
  folders --port P --cafile CA (...)          JSON list of folder names (decoded UTF-8).
  compose --from A --to B [--cc C]... --subject S [--body-file F | --body TEXT] [--html]
          [--attach FILE[:content/type]]... [--header 'K: V']... [--sign CERT KEY]
          [--detached|--opaque] [--encrypt-to CERT]... [--cipher aes-256-gcm|aes-256-cbc]
          [--order sign-encrypt|encrypt-sign|sign-encrypt-sign] [--message-id ID] [--date D]
          Writes an RFC 5322 message with CRLF line ends to stdout.
  open    --cert C --key K --cafile CA [--noverify] FILE|-
          Decrypts (when encrypted) and verifies (openssl cms) and prints JSON {signed_by,
          signers, verified, encrypted, smime_type, layers, headers, text, html, attachments:
          [{filename, content_type, sha256, size}]}. Exit 2 with a message when a signature
          does not verify or decryption fails.
"""

import argparse
import base64
import datetime
import email
import email.policy
import email.utils
import hashlib
import imaplib
import json
import mimetypes
import os
import re
import smtplib
import ssl
import subprocess
import sys
import tempfile


class Fail(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# helpers


def read_input(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def crlf(data: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def openssl(args, data=None):
    p = subprocess.run(["openssl"] + args, input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise Fail(f"openssl {' '.join(args)} failed:\n{p.stderr.decode(errors='replace')}")
    return p.stdout


def tls_context(cafile, cert=None, key=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


# IMAP modified UTF-7 (RFC 3501 5.1.3)
def imap_utf7_encode(s: str) -> str:
    out, buf = [], []

    def flush():
        if buf:
            b = "".join(buf).encode("utf-16-be")
            out.append("&" + base64.b64encode(b).decode().rstrip("=").replace("/", ",") + "-")
            buf.clear()

    for ch in s:
        if 0x20 <= ord(ch) <= 0x7e:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            buf.append(ch)
    flush()
    return "".join(out)


def imap_utf7_decode(s: str) -> str:
    def dec(m):
        t = m.group(1)
        if t == "":
            return "&"
        t = t.replace(",", "/")
        t += "=" * (-len(t) % 4)
        return base64.b64decode(t).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, s)


def quote_mailbox(name: str) -> str:
    enc = imap_utf7_encode(name)
    return '"' + enc.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------------
# send


def cmd_send(a):
    raw = read_input(a.file)
    ctx = tls_context(a.cafile, a.cert, a.key)
    if a.ssl:
        s = smtplib.SMTP_SSL(a.host, a.port, context=ctx, timeout=a.timeout)
    else:
        s = smtplib.SMTP(a.host, a.port, timeout=a.timeout)
    try:
        s.ehlo("mailtool.test")
        if a.starttls:
            s.starttls(context=ctx)
            s.ehlo("mailtool.test")
        if a.user:
            s.login(a.user, a.password or "")
        opts = []
        if any(b > 127 for b in raw) and s.has_extn("8bitmime"):
            opts.append("BODY=8BITMIME")
        refused = s.sendmail(a.sender, a.to, raw, mail_options=opts)
    finally:
        try:
            s.quit()
        except Exception:
            pass
    if refused:
        raise Fail(f"refused recipients: {refused}")
    print(json.dumps({"sent": True, "to": a.to, "size": len(raw)}))
    return 0


# ---------------------------------------------------------------------------------------------
# IMAP


def imap_login(a):
    ctx = tls_context(a.cafile, a.cert, a.key)
    m = imaplib.IMAP4_SSL(a.host, a.port, ssl_context=ctx, timeout=a.timeout)
    if a.cert and not a.user:
        m.authenticate("EXTERNAL", lambda _: b"")
    else:
        m.login(a.user, a.password or "")
    return m


def list_folders(m):
    typ, data = m.list('""', "*")
    if typ != "OK":
        raise Fail(f"LIST failed: {data}")
    names = []
    for line in data:
        if line is None:
            continue
        if isinstance(line, tuple):  # literal
            name = line[1].decode()
        else:
            line = line.decode()
            mm = re.match(r'\((?P<flags>[^)]*)\) (?P<sep>"[^"]*"|NIL) (?P<name>.+)$', line)
            if not mm:
                continue
            name = mm.group("name")
            if name.startswith('"'):
                name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        names.append(imap_utf7_decode(name))
    return names


def cmd_fetch(a):
    m = imap_login(a)
    try:
        typ, data = m.select(quote_mailbox(a.mailbox), readonly=True)
        if typ != "OK":
            raise Fail(f"SELECT {a.mailbox} failed: {data}")
        os.makedirs(a.out, exist_ok=True)
        typ, data = m.uid("SEARCH", None, "ALL")
        uids = [int(x) for x in data[0].split()] if data and data[0] else []
        result = []
        for uid in uids:
            typ, resp = m.uid("FETCH", str(uid), "(FLAGS BODY.PEEK[])")
            if typ != "OK":
                raise Fail(f"FETCH {uid} failed: {resp}")
            raw, flags = None, []
            for part in resp:
                if isinstance(part, tuple):
                    raw = part[1]
                    fm = re.search(rb"FLAGS \(([^)]*)\)", part[0])
                    if fm:
                        flags = fm.group(1).decode().split()
                elif isinstance(part, bytes):
                    fm = re.search(rb"FLAGS \(([^)]*)\)", part)
                    if fm:
                        flags = fm.group(1).decode().split()
            if raw is None:
                continue
            path = os.path.join(a.out, f"{uid}.eml")
            with open(path, "wb") as f:
                f.write(raw)
            result.append({"uid": uid, "file": path, "flags": flags})
    finally:
        m.logout()
    print(json.dumps(result))
    return 0


def cmd_count(a):
    m = imap_login(a)
    try:
        counts = {"INBOX": 0, "Traités": 0, "Quarantaine": 0}
        for name in list_folders(m):
            typ, data = m.status(quote_mailbox(name), "(MESSAGES)")
            if typ != "OK":
                continue
            mm = re.search(rb"MESSAGES (\d+)", data[0] if data and data[0] else b"")
            counts[name] = int(mm.group(1)) if mm else 0
    finally:
        m.logout()
    print(json.dumps(counts, ensure_ascii=False))
    return 0


def cmd_folders(a):
    m = imap_login(a)
    try:
        names = list_folders(m)
    finally:
        m.logout()
    print(json.dumps(names, ensure_ascii=False))
    return 0


# ---------------------------------------------------------------------------------------------
# compose


def split_entity(data: bytes):
    """(header block without MIME-Version, body) of an openssl SMIME output."""
    data = crlf(data)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"mime-version:")]
    return b"\r\n".join(lines) + b"\r\n", body


def smime_sign(entity: bytes, cert, key, opaque: bool) -> bytes:
    with tempfile.NamedTemporaryFile() as f:
        f.write(entity)
        f.flush()
        args = ["cms", "-sign", "-binary", "-crlfeol", "-md", "sha256", "-in", f.name,
                "-signer", cert, "-inkey", key]
        if opaque:
            args.append("-nodetach")
        out = openssl(args)
    h, b = split_entity(out)
    return h + b"\r\n" + b


def smime_encrypt(entity: bytes, certs, cipher) -> bytes:
    with tempfile.NamedTemporaryFile() as f:
        f.write(entity)
        f.flush()
        out = openssl(["cms", "-encrypt", "-binary", "-crlfeol", "-" + cipher, "-in", f.name]
                      + list(certs))
    h, b = split_entity(out)
    return h + b"\r\n" + b


def cmd_compose(a):
    from email.message import EmailMessage
    pol = email.policy.SMTP.clone(max_line_length=998)
    if a.body_file:
        with open(a.body_file, "rb") as f:
            body = f.read().decode("utf-8")
    else:
        body = a.body if a.body is not None else ""
    inner = EmailMessage(policy=pol)
    subtype = "html" if a.html else "plain"
    inner.set_content(body, subtype=subtype, charset="utf-8", cte="quoted-printable")
    for spec in a.attach:
        path, ctype = spec, None
        if ":" in spec and "/" in spec.rsplit(":", 1)[1] and not os.path.exists(spec):
            path, ctype = spec.rsplit(":", 1)
        if ctype is None:
            ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        maintype, sub = ctype.split("/", 1)
        with open(path, "rb") as f:
            data = f.read()
        inner.add_attachment(data, maintype=maintype, subtype=sub,
                             filename=os.path.basename(path), cte="base64")
    # the MIME entity alone (Content-* headers), as the S/MIME layers take it
    for part in inner.walk():  # EmailMessage puts one on every part; clients do not
        del part["MIME-Version"]
    entity = crlf(inner.as_bytes(policy=pol))

    encrypt = bool(a.encrypt_to)
    if a.sign and encrypt:
        order = a.order
    elif a.sign:
        order = "sign"
    elif encrypt:
        order = "encrypt"
    else:
        order = "plain"
    opaque = a.opaque
    if order == "sign":
        entity = smime_sign(entity, a.sign[0], a.sign[1], opaque)
    elif order == "encrypt":
        entity = smime_encrypt(entity, a.encrypt_to, a.cipher)
    elif order == "sign-encrypt":
        entity = smime_sign(entity, a.sign[0], a.sign[1], opaque)
        entity = smime_encrypt(entity, a.encrypt_to, a.cipher)
    elif order == "encrypt-sign":
        entity = smime_encrypt(entity, a.encrypt_to, a.cipher)
        entity = smime_sign(entity, a.sign[0], a.sign[1], opaque)
    elif order == "sign-encrypt-sign":
        # --outer-sign: someone else signs the outside (a relay, or surreptitious forwarding)
        outer_cert, outer_key = a.outer_sign or a.sign
        entity = smime_sign(entity, a.sign[0], a.sign[1], opaque)
        entity = smime_encrypt(entity, a.encrypt_to, a.cipher)
        entity = smime_sign(entity, outer_cert, outer_key, opaque)

    outer = EmailMessage(policy=pol)
    outer["From"] = a.sender
    outer["To"] = ", ".join(a.to)
    if a.cc:
        outer["Cc"] = ", ".join(a.cc)
    outer["Subject"] = a.subject
    outer["Date"] = a.date or email.utils.format_datetime(
        datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0))
    domain = a.sender.rsplit("@", 1)[-1].strip(">") if "@" in a.sender else "mailtool.test"
    outer["Message-ID"] = a.message_id or email.utils.make_msgid(domain=domain)
    for h in a.header:
        k, _, v = h.partition(":")
        if not k.strip() or not _:
            raise Fail(f"bad --header {h!r} (want 'Name: value')")
        outer[k.strip()] = v.strip()
    outer["MIME-Version"] = "1.0"
    head = outer.as_bytes(policy=pol).split(b"\r\n\r\n", 1)[0] + b"\r\n"
    sys.stdout.buffer.write(head + entity)
    sys.stdout.buffer.flush()
    return 0


# ---------------------------------------------------------------------------------------------
# open


def cert_emails(pem_path):
    out = openssl(["x509", "-in", pem_path, "-noout", "-email"]).decode()
    return [l.strip().lower() for l in out.splitlines() if l.strip()]


def smime_kind(part):
    ct = part.get_content_type()
    if ct == "multipart/signed":
        return "multipart/signed"
    if ct in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        st = part.get_param("smime-type") or ""
        if st.lower() in ("enveloped-data", "authenveloped-data", "signed-data", "certs-only"):
            return st
        # no smime-type: look at the CMS content type
        return "pkcs7-mime"
    return None


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def cmd_open(a):
    raw = crlf(read_input(a.file))
    msg = parse(raw)
    headers = {}
    for k, v in msg.items():
        headers.setdefault(k, str(v))
    layers, signers = [], []
    encrypted, verified_all = False, True
    entity = raw
    part = msg
    smime_type = None
    for _ in range(8):
        kind = smime_kind(part)
        if kind is None:
            break
        if smime_type is None:
            smime_type = kind
        layers.append(kind)
        with tempfile.TemporaryDirectory() as td:
            src = os.path.join(td, "in.eml")
            with open(src, "wb") as f:
                f.write(entity)
            if kind.lower() in ("enveloped-data", "authenveloped-data"):
                try:
                    out = openssl(["cms", "-decrypt", "-binary", "-inform", "SMIME", "-in", src,
                                   "-recip", a.cert, "-inkey", a.key])
                except Fail as e:
                    raise Fail(f"cannot decrypt: {e}")
                encrypted = True
            else:
                signer = os.path.join(td, "signer.pem")
                args = ["cms", "-verify", "-inform", "SMIME", "-in", src,
                        "-signer", signer]
                if a.noverify:
                    args.append("-noverify")
                    verified_all = False
                else:
                    args += ["-CAfile", a.cafile, "-purpose", "smimesign"]
                try:
                    out = openssl(args)
                except Fail as e:
                    if kind == "pkcs7-mime":  # maybe enveloped without smime-type
                        out = openssl(["cms", "-decrypt", "-binary", "-inform", "SMIME",
                                       "-in", src, "-recip", a.cert, "-inkey", a.key])
                        encrypted = True
                        entity = crlf(out)
                        part = parse(entity)
                        continue
                    raise Fail(f"signature verification failed: {e}")
                signers.append(cert_emails(signer))
        entity = crlf(out)
        part = parse(entity)
    if not signers:
        verified_all = False

    text, html, attachments = None, None, []
    for p in part.walk():
        if p.is_multipart():
            continue
        fn = p.get_filename()
        disp = p.get_content_disposition()
        ct = p.get_content_type()
        if fn or disp == "attachment":
            data = p.get_payload(decode=True) or b""
            attachments.append({"filename": fn, "content_type": ct,
                                "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
        elif ct == "text/plain" and text is None:
            text = p.get_content().replace("\r\n", "\n")
        elif ct == "text/html" and html is None:
            html = p.get_content().replace("\r\n", "\n")
    inner_headers = {}
    for k, v in part.items():
        inner_headers.setdefault(k, str(v))
    first = signers[0] if signers else []
    print(json.dumps({
        "signed_by": first[0] if first else None,
        "signers": [s[0] if s else None for s in signers],
        "verified": verified_all,
        "encrypted": encrypted,
        "smime_type": smime_type,
        "layers": layers,
        "headers": headers,
        "inner_headers": inner_headers,
        "text": text,
        "html": html,
        "attachments": attachments,
    }, ensure_ascii=False, indent=2))
    return 0


# ---------------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description="test mail tool (email, smtplib, imaplib, openssl)")
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("send")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, required=True)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--starttls", action="store_true")
    g.add_argument("--ssl", action="store_true", help="implicit TLS (smtps)")
    s.add_argument("--user")
    s.add_argument("--password")
    s.add_argument("--cert", help="TLS client certificate (PEM)")
    s.add_argument("--key")
    s.add_argument("--cafile")
    s.add_argument("--from", dest="sender", required=True)
    s.add_argument("--to", action="append", required=True)
    s.add_argument("--timeout", type=float, default=30)
    s.add_argument("file")
    s.set_defaults(fn=cmd_send)

    for name, fn in (("fetch", cmd_fetch), ("count", cmd_count), ("folders", cmd_folders)):
        s = sub.add_parser(name)
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--cafile", required=True)
        s.add_argument("--user")
        s.add_argument("--password")
        s.add_argument("--cert", help="client certificate: AUTHENTICATE EXTERNAL without --user")
        s.add_argument("--key")
        s.add_argument("--timeout", type=float, default=30)
        if name == "fetch":
            s.add_argument("--mailbox", default="INBOX")
            s.add_argument("--out", required=True)
        s.set_defaults(fn=fn)

    s = sub.add_parser("compose")
    s.add_argument("--from", dest="sender", required=True)
    s.add_argument("--to", action="append", required=True)
    s.add_argument("--cc", action="append", default=[])
    s.add_argument("--subject", required=True)
    g = s.add_mutually_exclusive_group()
    g.add_argument("--body-file")
    g.add_argument("--body")
    s.add_argument("--html", action="store_true", help="the body is HTML (text/html)")
    s.add_argument("--attach", action="append", default=[],
                   help="FILE or FILE:content/type")
    s.add_argument("--header", action="append", default=[], help="'Name: value' (outer)")
    s.add_argument("--sign", nargs=2, metavar=("CERT", "KEY"))
    s.add_argument("--outer-sign", nargs=2, metavar=("CERT", "KEY"),
                   help="with --order sign-encrypt-sign: the outer signature by this key")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--detached", action="store_true", help="multipart/signed (default)")
    g.add_argument("--opaque", action="store_true", help="application/pkcs7-mime signed-data")
    s.add_argument("--encrypt-to", action="append", default=[], metavar="CERT")
    s.add_argument("--cipher", default="aes-256-gcm",
                   choices=["aes-256-gcm", "aes-256-cbc", "aes-128-cbc", "aes-128-gcm",
                            "des-ede3-cbc"])
    s.add_argument("--order", default="sign-encrypt",
                   choices=["sign-encrypt", "encrypt-sign", "sign-encrypt-sign"])
    s.add_argument("--message-id")
    s.add_argument("--date")
    s.set_defaults(fn=cmd_compose)

    s = sub.add_parser("open")
    s.add_argument("--cert", required=True)
    s.add_argument("--key", required=True)
    s.add_argument("--cafile", required=True)
    s.add_argument("--noverify", action="store_true",
                   help="extract signed content without checking the signature chain")
    s.add_argument("file")
    s.set_defaults(fn=cmd_open)

    a = ap.parse_args(argv)
    try:
        return a.fn(a)
    except Fail as e:
        print(f"mailtool {a.cmd}: {e}", file=sys.stderr)
        return 2 if a.cmd == "open" else 1
    except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, ssl.SSLError) as e:
        print(f"mailtool {a.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
