// Keyboard rating (pages with [data-rating-root]): A/C/E label, 1-5 helpfulness, T/F/N the
// reply's verdict, X flag, Enter submit, S skip, U undo, G guidelines, ? key list. Re-focuses the form after every HTMX swap.
"use strict";
(function () {
  function root() { return document.querySelector("[data-rating-root]"); }
  function form() { return document.querySelector("[data-rating-form]"); }

  function focusForm() {
    var target = form() || document.querySelector("[data-rating-start] button");
    if (target) { target.focus({ preventScroll: true }); }
  }

  function isTyping(el) {
    if (!el || !el.tagName) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(el.type);
  }

  function pick(name, value) {
    var f = form();
    var input = f && f.querySelector('input[name="' + name + '"][value="' + value + '"]');
    if (!input) { return false; }
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function submit(selector) {
    var f = document.querySelector(selector);
    if (!f) { return false; }
    f.requestSubmit();
    return true;
  }

  function toggle(selector) {
    var d = document.querySelector(selector);
    if (!d) { return false; }
    d.open = !d.open;
    return true;
  }

  function flip(name) {
    var f = form();
    var box = f && f.querySelector('input[type="checkbox"][name="' + name + '"]');
    if (!box) { return false; }
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  var LABELS = { a: "agree", c: "correct", e: "evasive" };
  var VERDICTS = { t: "true", f: "false", n: "none" };

  document.addEventListener("keydown", function (ev) {
    if (!root() || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) { return; }
    if (isTyping(ev.target)) {
      if (ev.key === "Escape") { ev.target.blur(); focusForm(); }
      return;
    }
    var key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    var handled = false;
    if (LABELS[key]) { handled = pick("label", LABELS[key]); }
    else if (/^[1-5]$/.test(key)) { handled = pick("helpfulness", key); }
    else if (VERDICTS[key]) { handled = pick("verdict", VERDICTS[key]); }
    else if (key === "x") { handled = flip("flagged"); }
    else if (key === "Enter") {
      var tag = ev.target && ev.target.tagName;
      if (tag === "BUTTON" || tag === "A" || tag === "SUMMARY") { return; }
      handled = submit("[data-rating-form]") || submit("[data-rating-start]");
    }
    else if (key === "s") { handled = submit("[data-rating-skip]"); }
    else if (key === "u") { handled = submit("[data-rating-undo]"); }
    else if (key === "g") { handled = toggle("[data-rating-guidelines]"); }
    else if (key === "?") { handled = toggle("[data-rating-keys]"); }
    if (handled) { ev.preventDefault(); }
  });

  document.addEventListener("htmx:afterSwap", focusForm);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", focusForm);
  } else {
    focusForm();
  }
})();

// --- Pairwise comparing ---------------------------------------------------------------------
// Keyboard comparing (pages with [data-pairwise-root]): 1 left, 2 right, 0 tie for the
// highlighted question (then the next is highlighted), F / H pick the factual or helpful
// question, Enter submit, S skip, U undo, G guidelines, ? key list. Re-focuses the form
// after every HTMX swap.
(function () {
  var SIDES = { "1": "left", "2": "right", "0": "tie" };

  function root() { return document.querySelector("[data-pairwise-root]"); }
  function form() { return document.querySelector("[data-pairwise-form]"); }
  function questions() {
    var f = form();
    return f ? Array.prototype.slice.call(f.querySelectorAll("[data-question]")) : [];
  }

  function active() {
    var all = questions();
    for (var i = 0; i < all.length; i++) {
      if (all[i].hasAttribute("data-active")) { return i; }
    }
    return -1;
  }

  function activate(index) {
    questions().forEach(function (q, i) {
      if (i === index) { q.setAttribute("data-active", ""); } else { q.removeAttribute("data-active"); }
    });
  }

  function firstUnanswered() {
    var all = questions();
    for (var i = 0; i < all.length; i++) {
      if (!all[i].querySelector("input:checked")) { return i; }
    }
    return 0;
  }

  function setup() {
    var f = form();
    var target = f || document.querySelector("[data-pairwise-start] button");
    if (f) { activate(firstUnanswered()); }
    if (target) { target.focus({ preventScroll: true }); }
  }

  function answer(side) {
    var all = questions();
    var i = active();
    if (i < 0) { i = firstUnanswered(); }
    var q = all[i];
    var input = q && q.querySelector('input[value="' + side + '"]');
    if (!input) { return false; }
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    activate(Math.min(i + 1, all.length - 1));
    return true;
  }

  function pickQuestion(name) {
    var all = questions();
    for (var i = 0; i < all.length; i++) {
      if (all[i].getAttribute("data-question") === name) { activate(i); return true; }
    }
    return false;
  }

  function submit(selector) {
    var f = document.querySelector(selector);
    if (!f) { return false; }
    f.requestSubmit();
    return true;
  }

  function toggle(selector) {
    var d = document.querySelector(selector);
    if (!d) { return false; }
    d.open = !d.open;
    return true;
  }

  function isTyping(el) {
    if (!el || !el.tagName) { return false; }
    if (el.isContentEditable || el.tagName === "TEXTAREA" || el.tagName === "SELECT") { return true; }
    return el.tagName === "INPUT" && !/^(radio|checkbox|submit|button)$/.test(el.type);
  }

  document.addEventListener("click", function (ev) {
    var q = ev.target && ev.target.closest && ev.target.closest("[data-pairwise-form] [data-question]");
    if (q) { activate(questions().indexOf(q)); }
  });

  document.addEventListener("keydown", function (ev) {
    if (!root() || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) { return; }
    if (isTyping(ev.target)) { return; }
    var key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
    var handled = false;
    if (SIDES[key]) { handled = answer(SIDES[key]); }
    else if (key === "f") { handled = pickQuestion("factual"); }
    else if (key === "h") { handled = pickQuestion("helpful"); }
    else if (key === "Enter") {
      var tag = ev.target && ev.target.tagName;
      if (tag === "BUTTON" || tag === "A" || tag === "SUMMARY") { return; }
      handled = submit("[data-pairwise-form]") || submit("[data-pairwise-start]");
    }
    else if (key === "s") { handled = submit("[data-pairwise-skip]"); }
    else if (key === "u") { handled = submit("[data-pairwise-undo]"); }
    else if (key === "g") { handled = toggle("[data-pairwise-guidelines]"); }
    else if (key === "?") { handled = toggle("[data-pairwise-keys]"); }
    if (handled) { ev.preventDefault(); }
  });

  document.addEventListener("htmx:afterSwap", setup);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setup);
  } else {
    setup();
  }
})();
