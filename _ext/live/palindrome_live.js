/* The palindrome classifier, live in the page: the forward pass in plain JavaScript, and the page's controls.
 *
 * The weights come from window.PALINDROME_LIVE_WEIGHTS (palindrome_live_weights.js, written at build
 * time by palindrome.book.live.write_export from the processed checkpoint). The forward pass is
 * TransformerLens's for this model: token and position embeddings; in each of the two layers a
 * LayerNorm, then per head q = x W_Q + b_Q, k, v likewise, scores q.k / attn_scale with a causal mask,
 * softmax, z = pattern v, and the head's output z W_O added to the residual stream with b_O; a final
 * LayerNorm and the unembedding at END. An ablated head's output is replaced by 0 (zero) or by its
 * per-position mean over the reference batch (mean), as palindrome.ablation does for hook_result.
 */
(function () {
  "use strict";
  const HEADS = ["0.0", "0.1", "1.0", "1.1"];
  const KINDS = ["none", "zero", "mean"];

  function layerNorm(x, w, b, eps) {
    const n = x.length;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[i];
    mean /= n;
    const c = x.map((v) => v - mean);
    let sq = 0;
    for (let i = 0; i < n; i++) sq += c[i] * c[i];
    const scale = Math.sqrt(sq / n + eps);
    return { out: c.map((v, i) => (v / scale) * w[i] + b[i]), scale };
  }

  function affine(x, W, b) { // x [d_in], W [d_in][d_out], b [d_out]
    const out = b.slice();
    for (let i = 0; i < x.length; i++) {
      const xi = x[i];
      if (xi === 0) continue;
      const row = W[i];
      for (let j = 0; j < out.length; j++) out[j] += xi * row[j];
    }
    return out;
  }

  /* One forward pass. tokens: 22 integers (START, 20 values, END); ablations: {"0.1": "zero", ...}.
   * Returns END's logits, P(palindrome), the logit difference (not palindrome - palindrome), every
   * head's attention pattern [dest][src], and the attribution of each residual component at END. */
  function forward(W, tokens, ablations) {
    const cfg = W.config;
    const seq = tokens.length;
    ablations = ablations || {};
    let resid = tokens.map((t, p) => W.W_E[t].map((v, i) => v + W.W_pos[p][i]));
    const endParts = { embed: W.W_E[tokens[seq - 1]].slice(), pos_embed: W.W_pos[seq - 1].slice() };
    const patterns = {};
    const biasSum = new Array(cfg.d_model).fill(0);
    for (let l = 0; l < cfg.n_layers; l++) {
      const L = W.layers[l];
      const x = resid.map((r) => layerNorm(r, L.ln_w, L.ln_b, cfg.eps).out);
      const next = resid.map((r) => r.map((v, i) => v + L.b_O[i]));
      for (let i = 0; i < cfg.d_model; i++) biasSum[i] += L.b_O[i];
      for (let h = 0; h < cfg.n_heads; h++) {
        const name = `${l}.${h}`;
        const q = x.map((xp) => affine(xp, L.W_Q[h], L.b_Q[h]));
        const k = x.map((xp) => affine(xp, L.W_K[h], L.b_K[h]));
        const v = x.map((xp) => affine(xp, L.W_V[h], L.b_V[h]));
        const pattern = [];
        for (let d = 0; d < seq; d++) {
          const s = [];
          let max = -Infinity;
          for (let src = 0; src <= d; src++) {
            let dot = 0;
            for (let i = 0; i < cfg.d_head; i++) dot += q[d][i] * k[src][i];
            s.push(dot / cfg.attn_scale);
            if (s[src] > max) max = s[src];
          }
          let total = 0;
          const e = s.map((z) => { const y = Math.exp(z - max); total += y; return y; });
          const row = new Array(seq).fill(0);
          for (let src = 0; src <= d; src++) row[src] = e[src] / total;
          pattern.push(row);
        }
        patterns[name] = pattern;
        const kind = ablations[name] || "none";
        for (let d = 0; d < seq; d++) {
          let out;
          if (kind === "zero") out = new Array(cfg.d_model).fill(0);
          else if (kind === "mean") out = L.mean_result[h][d];
          else {
            const z = new Array(cfg.d_head).fill(0);
            for (let src = 0; src <= d; src++) {
              const a = pattern[d][src];
              for (let i = 0; i < cfg.d_head; i++) z[i] += a * v[src][i];
            }
            out = affine(z, L.W_O[h], new Array(cfg.d_model).fill(0));
          }
          for (let i = 0; i < cfg.d_model; i++) next[d][i] += out[i];
          if (d === seq - 1) endParts["H" + name] = out.slice();
        }
      }
      resid = next;
    }
    endParts.b_O = biasSum;
    const fin = layerNorm(resid[seq - 1], W.ln_final_w, W.ln_final_b, cfg.eps);
    const logits = affine(fin.out, W.W_U, W.b_U);
    const direction = W.W_U.map((row) => row[0] - row[1]);
    const attribution = {};
    for (const [name, part] of Object.entries(endParts)) {
      let dot = 0;
      for (let i = 0; i < part.length; i++) dot += part[i] * direction[i];
      attribution[name] = { dla: dot, direct: dot / fin.scale };
    }
    const m = Math.max(logits[0], logits[1]);
    const p1 = Math.exp(logits[1] - m) / (Math.exp(logits[0] - m) + Math.exp(logits[1] - m));
    return {
      logits, pPalindrome: p1, logitDiff: logits[0] - logits[1], finalScale: fin.scale,
      unembedBias: W.b_U[0] - W.b_U[1], patterns, attribution,
    };
  }

  /* Parse what the reader typed: 20 integers 0..max_value, or a message saying what is wrong. */
  function parseValues(text, maxValue, count) {
    const parts = String(text).trim().split(/[\s,;]+/).filter((s) => s.length > 0);
    if (parts.length !== count) return { error: `Enter exactly ${count} values (got ${parts.length}).` };
    const values = [];
    for (let i = 0; i < parts.length; i++) {
      const r = parseValue(parts[i], maxValue);
      if (r.error) return { error: `Value ${i + 1}: ${r.error}` };
      values.push(r.value);
    }
    return { values };
  }

  function parseValue(text, maxValue) {
    const s = String(text).trim();
    if (!/^\d+$/.test(s)) return { error: `"${s}" is not a whole number from 0 to ${maxValue}.` };
    const v = Number(s);
    if (v > maxValue) return { error: `${v} is outside 0-${maxValue}.` };
    return { value: v };
  }

  function mismatched(tokens, mirror) {
    return tokens.map((t, p) => mirror[p] >= 0 && tokens[mirror[p]] !== t);
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children || []) e.appendChild(c);
    return e;
  }

  function mount(root, W) {
    const cfg = W.config;
    const count = cfg.n_ctx - 2;
    const state = { values: W.examples.palindrome.slice(), ablations: {} };
    root.innerHTML = "";
    const uid = root.id || "palindrome-live";

    const exampleSelect = el("select", { id: `${uid}-example` },
      Object.keys(W.examples).map((name) => el("option", { value: name, text: name })));
    const exampleRow = el("div", { class: "pl-row" }, [
      el("label", { for: `${uid}-example`, text: "Example: " }), exampleSelect,
    ]);

    const textInput = el("input", { id: `${uid}-text`, type: "text", size: "70", spellcheck: "false",
      "aria-describedby": `${uid}-text-msg` });
    const textMsg = el("span", { id: `${uid}-text-msg`, class: "pl-msg", role: "status", "aria-live": "polite" });
    const textRow = el("div", { class: "pl-row" }, [
      el("label", { for: `${uid}-text`, text: "All 20 values: " }), textInput, textMsg,
    ]);

    const cells = [];
    const cellRow = el("div", { class: "pl-row pl-cells", role: "group", "aria-label": "The 20 values, one per position" });
    cellRow.appendChild(el("span", { class: "pl-token", text: "START" }));
    for (let i = 0; i < count; i++) {
      const input = el("input", { id: `${uid}-v${i + 1}`, type: "text", inputmode: "numeric", maxlength: "2",
        size: "2", class: "pl-cell", "aria-label": `value at position ${i + 1}`, "aria-describedby": `${uid}-cell-msg` });
      cells.push(input);
      cellRow.appendChild(input);
    }
    cellRow.appendChild(el("span", { class: "pl-token", text: "END" }));
    const cellMsg = el("div", { id: `${uid}-cell-msg`, class: "pl-msg", role: "status", "aria-live": "polite" });

    const ablationRow = el("div", { class: "pl-row", role: "group", "aria-label": "Ablate heads" });
    const ablationSelects = {};
    for (const head of HEADS) {
      const id = `${uid}-ablate-${head.replace(".", "-")}`;
      const select = el("select", { id }, KINDS.map((k) => el("option", { value: k, text: k === "none" ? "live" : `${k}-ablated` })));
      ablationSelects[head] = select;
      ablationRow.appendChild(el("label", { for: id, text: ` head ${head}: ` }));
      ablationRow.appendChild(select);
    }

    const summary = el("div", { class: "pl-summary", role: "status", "aria-live": "polite" });
    const sequence = el("div", { class: "pl-sequence", "aria-label": "the sequence, mismatched positions highlighted" });
    const attribution = el("table", { class: "pl-attribution" });
    const patterns = el("div", { id: `${uid}-patterns`, class: "palindrome-circuitsvis pl-patterns" });
    root.append(exampleRow, textRow, cellRow, cellMsg, ablationRow, summary, sequence,
      el("h4", { text: "Direct logit attribution at END" }), attribution,
      el("h4", { text: "Attention patterns of all four heads" }), patterns);

    function render() {
      const t0 = performance.now();
      const tokens = [cfg.start, ...state.values, cfg.end];
      const out = forward(W, tokens, state.ablations);
      const broken = mismatched(tokens, cfg.mirror);
      summary.textContent = `P(palindrome) = ${out.pPalindrome.toFixed(4)}; logit difference ` +
        `(not palindrome − palindrome) = ${out.logitDiff.toFixed(3)}; ` +
        `${broken.filter(Boolean).length} position(s) differ from their mirror`;
      sequence.innerHTML = "";
      sequence.appendChild(el("span", { text: "START " }));
      state.values.forEach((v, i) => {
        sequence.appendChild(el("span", { class: broken[i + 1] ? "pl-broken" : "pl-ok", text: String(v).padStart(2, "0") }));
      });
      sequence.appendChild(el("span", { text: " END" }));
      cells.forEach((c, i) => { c.classList.toggle("pl-broken", broken[i + 1]); });
      attribution.innerHTML = "";
      attribution.appendChild(el("tr", {}, ["component", "chapter 3 (before the final LayerNorm)",
        "÷ final LayerNorm scale"].map((h) => el("th", { scope: "col", text: h }))));
      let total = 0;
      for (const [name, a] of Object.entries(out.attribution)) {
        total += a.direct;
        attribution.appendChild(el("tr", {}, [el("td", { text: name }), el("td", { text: a.dla.toFixed(3) }),
          el("td", { text: a.direct.toFixed(3) })]));
      }
      attribution.appendChild(el("tr", {}, [el("td", { text: "b_U" }), el("td", { text: "" }),
        el("td", { text: out.unembedBias.toFixed(3) })]));
      attribution.appendChild(el("tr", {}, [el("td", { text: "sum = logit difference" }), el("td", { text: "" }),
        el("td", { text: (total + out.unembedBias).toFixed(3) })]));
      const labels = tokens.map((t, p) => (p === 0 ? "START" : p === tokens.length - 1 ? "END" : `${t} (${p})`));
      root.dataset.lastUpdateMs = String(performance.now() - t0);
      root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
      // The numbers are in the DOM now; the next frame paints them. circuitsvis mounts a fresh React
      // tree per call (its own render()), which is the slow part, so the patterns are drawn after
      // that paint, and only for the latest edit when edits come faster than frames.
      const ticket = ++drawTicket;
      requestAnimationFrame(() => setTimeout(() => {
        root.dataset.lastNumbersPaintMs = String(performance.now() - t0);
        if (ticket !== drawTicket) return;
        drawPatterns(out.patterns, labels);
        requestAnimationFrame(() => setTimeout(() => {
          root.dataset.lastPatternsPaintMs = String(performance.now() - t0);
          root.dataset.painted = String(Number(root.dataset.painted || 0) + 1);
        }, 0));
      }, 0));
      return out;
    }

    let drawTicket = 0;
    function drawPatterns(headPatterns, labels) {
      if (!window.CircuitsVis) {
        patterns.textContent = "(circuitsvis did not load; the numbers above are still live)";
        return;
      }
      const id = `${uid}-patterns-${drawTicket}`;  // a fresh container: circuitsvis creates a new React root per call
      patterns.replaceChildren(el("div", { id }));
      window.CircuitsVis.render(id, window.CircuitsVis.AttentionPatterns, {
        attention: HEADS.map((h) => headPatterns[h]), tokens: labels, headLabels: HEADS.map((h) => "H" + h),
      });
    }

    function showValues(keepText) {
      if (!keepText) textInput.value = state.values.join(" ");
      cells.forEach((c, i) => { c.value = String(state.values[i]); c.removeAttribute("aria-invalid"); });
      textInput.removeAttribute("aria-invalid");
      textMsg.textContent = "";
      cellMsg.textContent = "";
    }

    exampleSelect.addEventListener("change", () => {
      state.values = W.examples[exampleSelect.value].slice();
      showValues();
      render();
    });
    textInput.addEventListener("input", () => {
      const r = parseValues(textInput.value, cfg.max_value, count);
      if (r.error) {
        textMsg.textContent = r.error;
        textInput.setAttribute("aria-invalid", "true");
        return;
      }
      state.values = r.values;
      showValues(true);
      render();
    });
    cells.forEach((c, i) => {
      c.addEventListener("focus", () => c.select());
      c.addEventListener("input", () => {
        const r = parseValue(c.value, cfg.max_value);
        if (r.error) {
          cellMsg.textContent = `Position ${i + 1}: ${r.error}`;
          c.setAttribute("aria-invalid", "true");
          return;
        }
        c.removeAttribute("aria-invalid");
        cellMsg.textContent = "";
        state.values[i] = r.value;
        textInput.value = state.values.join(" ");
        render();
      });
    });
    for (const head of HEADS) {
      ablationSelects[head].addEventListener("change", () => {
        state.ablations[head] = ablationSelects[head].value;
        render();
      });
    }
    showValues();
    render();
    return { render, state };
  }

  const api = { forward, parseValues, parseValue, mount, HEADS, KINDS };
  window.palindromeLive = api;

  function start() {
    const W = window.PALINDROME_LIVE_WEIGHTS;
    for (const root of document.querySelectorAll(".palindrome-live")) {
      if (!W) {
        root.textContent = "The model's weights are not in this build (palindrome_live_weights.js is missing).";
        continue;
      }
      api.page = mount(root, W);
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
