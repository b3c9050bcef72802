"""HTML bodies to text: layout tables read like prose, data tables keep their columns."""

from __future__ import annotations

from mailbot.parsing import html_to_text


def test_scripts_and_styles_go_and_links_stay() -> None:
    text = html_to_text('<style>p{color:red}</style><script>alert(1)</script>'
                        '<p>See <a href="https://status.example.com">the status page</a>.</p>')
    assert text == "See [the status page](https://status.example.com)."


def test_a_link_without_text_is_dropped() -> None:
    text = html_to_text('<p><a href="https://t.example.com/x"><img src="cid:logo"></a>Hello</p>'
                        '<a href="https://t.example.com/y"> <a href="https://t.example.com/z">'
                        "</a></a>")
    assert text == "Hello"


def test_a_newsletter_laid_out_in_nested_tables_is_pulled_to_the_left() -> None:
    wide = "x" * 150
    html = ("<table><tr><td>" + wide + "</td></tr><tr><td><table><tr><td></td><td>"
            "<ul><li>First point</li><li>Second point</li></ul></td></tr></table>"
            "</td></tr></table>")
    lines = html_to_text(html).splitlines()
    assert lines[0] == wide
    points = [line for line in lines if "point" in line]
    assert [p.strip() for p in points] == ["* First point", "* Second point"]
    assert all(len(p) - len(p.lstrip()) <= 8 for p in points)


def test_a_narrow_data_table_keeps_its_columns_aligned() -> None:
    html = ("<table><tr><th>Host</th><th>Status</th></tr>"
            "<tr><td>db-primary-eu-west</td><td>down</td></tr>"
            "<tr><td>web</td><td>up</td></tr></table>")
    lines = [line for line in html_to_text(html).splitlines() if line.strip()]
    column = lines[0].index("Status")
    assert lines[1].index("down") == column
    assert lines[2].index("up") == column
