// Shared by the three pages: messages (i18n), the bearer token, API calls, times.
// Plain JavaScript, no build step. Every word on a page comes from i18n/<lang>.json: elements
// carry data-i18n (text) or data-i18n-placeholder / data-i18n-title; code calls t(key, args).
// Simplified Chinese is the default; the header's switch stores the choice in localStorage.
// Times are shown in the viewer's own time zone (the browser's, Intl).
"use strict";

const Offsite = (() => {
  const TOKEN_KEY = "offsite.token";
  const LANG_KEY = "offsite.lang";
  const LANGS = ["zh-CN", "en"];
  const st = { token: null, lang: "zh-CN", messages: {}, onLang: [] };

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function t(key, args = {}) {
    const text = st.messages[key];
    if (text === undefined) return key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (args[name] ?? ""));
  }

  // a label for a value of a known family (kind.x, state.x, ...), the value itself if none
  function label(family, value) {
    const key = `${family}.${value}`;
    return st.messages[key] !== undefined ? st.messages[key] : String(value ?? "");
  }

  function clueTitle(c) {
    return c.title_key ? t(c.title_key, c.title_args || {}).trim() : (c.title || c.clue_id);
  }

  function applyMessages(root = document) {
    document.documentElement.lang = st.lang;
    for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of root.querySelectorAll("[data-i18n-placeholder]")) {
      node.placeholder = t(node.dataset.i18nPlaceholder);
    }
    for (const node of root.querySelectorAll("[data-i18n-title]")) node.title = t(node.dataset.i18nTitle);
    const title = document.querySelector("title[data-i18n]");
    if (title) document.title = t(title.dataset.i18n);
  }

  async function loadMessages(lang) {
    const resp = await fetch(`/ui/i18n/${lang}.json`);
    if (!resp.ok) throw new Error(`messages ${lang}: HTTP ${resp.status}`);
    st.messages = await resp.json();
    st.lang = lang;
    applyMessages();
  }

  async function setLang(lang) {
    localStorage.setItem(LANG_KEY, lang);
    await loadMessages(lang);
    for (const fn of st.onLang) fn(lang);
  }

  async function initLang() {
    const params = new URLSearchParams(location.search);
    const asked = params.get("lang") || localStorage.getItem(LANG_KEY);
    await loadMessages(LANGS.includes(asked) ? asked : "zh-CN");
    const sw = $("lang-switch");
    if (sw) sw.addEventListener("click", () => setLang(st.lang === "zh-CN" ? "en" : "zh-CN")
      .catch(report));
  }

  function initToken() {
    const params = new URLSearchParams(location.search);
    const fromUrl = params.get("token");
    if (fromUrl) {
      localStorage.setItem(TOKEN_KEY, fromUrl);
      params.delete("token");  // keep the token out of the address bar and history
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    }
    st.token = localStorage.getItem(TOKEN_KEY);
    return st.token;
  }

  class AuthError extends Error {}
  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, opts = {}) {
    const headers = { Authorization: "Bearer " + st.token, ...(opts.headers || {}) };
    let body = opts.body;
    if (body !== undefined && !(body instanceof FormData) && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const resp = await fetch(path, { method: opts.method || "GET", headers, body });
    if (resp.status === 401) throw new AuthError(t("login.rejected"));
    if (!resp.ok) {
      let detail = "";
      try { const j = await resp.json(); detail = j.detail || j.title || ""; } catch (e) { /* */ }
      if (typeof detail !== "string") detail = JSON.stringify(detail);
      throw new HttpError(resp.status, `${path}: HTTP ${resp.status} ${detail}`.trim());
    }
    if (opts.blob) return resp.blob();
    return resp.status === 204 ? null : resp.json();
  }

  const timeFmt = () => new Intl.DateTimeFormat(st.lang, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false });

  function fmtTime(value) {
    if (!value) return "";
    const d = new Date(value);
    return isNaN(d) ? String(value) : timeFmt().format(d);
  }

  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? t("time.h_min", { h, m }) : m ? t("time.min", { m }) : t("time.s", { s });
  }

  function report(e) { console.warn(e); }

  // Sign-in form, sign-out button, who-am-I; calls start() once signed in.
  function setupLogin(start) {
    const showLogin = (message) => {
      $("app").hidden = true;
      $("logout").hidden = true;
      $("login").hidden = false;
      $("login-error").textContent = message || "";
    };
    $("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      localStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
      st.token = localStorage.getItem(TOKEN_KEY);
      run();
    });
    $("logout").addEventListener("click", () => {
      localStorage.removeItem(TOKEN_KEY);
      st.token = null;
      location.reload();
    });
    async function run() {
      let me;
      try { me = await api("/me"); } catch (e) {
        showLogin(e instanceof AuthError ? t("login.rejected") : String(e.message || e));
        return;
      }
      $("login").hidden = true;
      $("app").hidden = false;
      $("logout").hidden = false;
      $("who").textContent = `${me.id} · ${me.department} · ${me.role}`;
      try { await start(me); } catch (e) {
        if (e instanceof AuthError) showLogin(t("login.rejected")); else throw e;
      }
      document.body.dataset.ready = "1";
    }
    return { run, showLogin };
  }

  return {
    $, el, t, label, clueTitle, api, fmtTime, fmtDuration, initLang, initToken, setupLogin,
    applyMessages, AuthError, HttpError, report,
    get lang() { return st.lang; }, get token() { return st.token; },
    onLang(fn) { st.onLang.push(fn); },
  };
})();
