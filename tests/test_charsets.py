"""Charsets: declared, mis-declared and undeclared bytes decoded to the text that was meant."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailbot.parsing import parse_message
from mailbot.parsing.headers import decode_bytes

RUSSIAN = ("Добрый день! Сервер не отвечает с утра, клиенты не могут войти в систему. "
           "Пожалуйста, посмотрите как можно скорее.")


def body_mail(body: bytes, content_type: str = "text/plain") -> bytes:
    return (b"From: a@x.example\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: "
            + content_type.encode() + b"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body)


def test_us_ascii_declared_over_utf8_bytes_is_read_as_utf8() -> None:
    message = parse_message(body_mail("Envoyé par le service".encode(),
                                      "text/plain; charset=us-ascii"))
    assert message.body_text == "Envoyé par le service"


def test_latin1_declared_over_utf8_bytes_is_read_as_utf8() -> None:
    message = parse_message(body_mail("Grüße aus Köln".encode(),
                                      "text/plain; charset=iso-8859-1"))
    assert message.body_text == "Grüße aus Köln"


def test_real_latin1_stays_latin1() -> None:
    message = parse_message(body_mail("Grüße aus Köln".encode("latin-1"),
                                      "text/plain; charset=iso-8859-1"))
    assert message.body_text == "Grüße aus Köln"


def test_an_undeclared_cyrillic_body_is_detected() -> None:
    for codec in ("koi8-r", "cp1251"):
        message = parse_message(body_mail(RUSSIAN.encode(codec)))
        assert message.body_text == RUSSIAN, codec


def test_utf8_with_a_stray_byte_keeps_its_utf8() -> None:
    raw = (b"From: " + "Юникод запрещен".encode() + b"\xf1 <h@example.com>\r\n"
           b"Subject: x\r\n\r\nbody\r\n")
    message = parse_message(raw)
    assert message.from_ is not None and message.from_.name == "Юникод запрещенñ"


def test_a_raw_8bit_file_name_is_read_in_the_charset_the_mail_declares() -> None:
    name = "报告,第二版.xls".encode("gb2312")
    raw = (b"From: a@x.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"; charset="GB2312"\r\n\r\n'
           b"--b\r\nContent-Type: application/vnd.ms-excel; name=\"" + name + b"\"\r\n"
           b'Content-Disposition: attachment; filename="' + name + b'"\r\n'
           b"Content-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n")
    (attachment,) = parse_message(raw).attachments
    assert attachment.filename == "报告,第二版.xls"


def test_a_raw_utf8_file_name_is_read_as_utf8() -> None:
    name = "Картинка с очень длинным именем.png".encode()
    raw = (b"From: a@x.example\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
           b'--b\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename="'
           + name + b'"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n')
    (attachment,) = parse_message(raw).attachments
    assert attachment.filename == "Картинка с очень длинным именем.png"


@given(st.text(st.characters(blacklist_categories=("Cs",))))
def test_undeclared_utf8_always_reads_back_exactly(text: str) -> None:
    assert decode_bytes(text.encode()) == text


@given(st.binary(max_size=400), st.sampled_from([None, "utf-8", "us-ascii", "iso-2022-jp",
                                                  "gb2312", "x-nonsense", "koi8-r"]))
def test_any_bytes_under_any_declaration_decode_without_raising(data: bytes,
                                                                 charset: str | None) -> None:
    assert isinstance(decode_bytes(data, charset, ("big5",)), str)
