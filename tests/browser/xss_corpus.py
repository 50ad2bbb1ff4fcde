"""Hostile strings: each one, if it ever ran, would set ``window.__xss_<n>``."""


def _payloads() -> list[str]:
    raw = [
        "<script>window.__xss_N=1</script>",
        "<SCRIPT SRC=data:text/javascript,window.__xss_N=1></SCRIPT>",
        "<img src=x onerror=window.__xss_N=1>",
        '<img src=x onerror="window.__xss_N=1">',
        "<svg onload=window.__xss_N=1>",
        "<svg><script>window.__xss_N=1</script></svg>",
        "<body onload=window.__xss_N=1>",
        '<iframe srcdoc="<script>parent.__xss_N=1</script>"></iframe>',
        '<iframe src="javascript:parent.__xss_N=1"></iframe>',
        '<a href="javascript:window.__xss_N=1" id=xssN>click</a>',
        '"><script>window.__xss_N=1</script>',
        "'><img src=x onerror=window.__xss_N=1>",
        '" autofocus onfocus="window.__xss_N=1',
        "' autofocus onfocus='window.__xss_N=1",
        "</textarea><script>window.__xss_N=1</script>",
        "</title><script>window.__xss_N=1</script>",
        "<details open ontoggle=window.__xss_N=1>",
        "<input autofocus onfocus=window.__xss_N=1>",
        "<video><source onerror=window.__xss_N=1></video>",
        '<object data="data:text/html,<script>parent.__xss_N=1</script>"></object>',
        '<embed src="data:text/html,<script>parent.__xss_N=1</script>">',
        "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss_N=1>",
        "<scr<script>ipt>window.__xss_N=1</scr</script>ipt>",
        "<<img src=x onerror=window.__xss_N=1//<",
        "<img src=`x` onerror=window.__xss_N=1>",
        "<style>@import 'data:,x';</style><img src=x onerror=window.__xss_N=1>",
        "[x](javascript:window.__xss_N=1)",
        '[x](JaVaScRiPt:window.__xss_N=1 "t")',
        '![x](x" onerror="window.__xss_N=1)',
        '<a href="data:text/html,<script>window.__xss_N=1</script>">d</a>',
        '<div hx-get="/" hx-on::load="window.__xss_N=1" hx-trigger=load>h</div>',
        '<form action="javascript:window.__xss_N=1"><button id=xssbN>go</button></form>',
        "{{ '<script>window.__xss_N=1</script>' | safe }}",
        "{% raw %}<script>window.__xss_N=1</script>{% endraw %}",
        "<!--<script>window.__xss_N=1</script>-->",
        '<meta http-equiv=refresh content="0;url=javascript:window.__xss_N=1">',
        '<base href="javascript:window.__xss_N=1//">',
        '<noscript><p title="</noscript><img src=x onerror=window.__xss_N=1>">',
    ]
    return [
        p.replace("__xss_N", f"__xss_{n}").replace("xssN", f"xss{n}").replace("xssbN", f"xssb{n}")
        for n, p in enumerate(raw)
    ]


PAYLOADS = _payloads()
# Template injection: must show literally, never evaluated.
LITERALS = ["{{7*7}}", "{% raw %}", "${7*7}", "#{7*7}"]


def text_for(slot: str, limit: int = 10_000) -> str:
    """Short fields get one payload (chosen by the slot), long ones all of them."""
    index = sum(map(ord, slot)) % len(PAYLOADS)
    if limit <= 200 or slot.endswith((".name", ".label", ".category", ".display_name")):
        return f"{PAYLOADS[index]} {slot}"[:limit]
    return " ".join([*LITERALS, *PAYLOADS])
