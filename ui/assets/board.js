// The concept board of the Vector arithmetic page (a Streamlit Custom Component v2; see ui/board.py).
// Draws a palette of thumbnails and one drop zone per bin, and reports the whole assignment (one list of
// seeds per bin) as the state value "assignment" after every drop or removal. Two ways to drag, because
// neither works everywhere: HTML5 drag-and-drop (desktop mice) and pointer events (touch, pens, synthetic
// mouse moves); a native dragstart cancels the pointer drag, so one gesture never drops twice. Clicking a
// thumbnail and then a bin does the same without dragging.
export default function ({ data, parentElement, setStateValue }) {
  const board = parentElement.querySelector('.board');
  if (!board || !data) return;
  // Streamlit calls this again on every rerun. Redraw only when the pictures or bins changed, and take
  // the assignment from Python only when Python changed it (data.version): otherwise the browser's own
  // copy is newer (a drop whose rerun has not come back yet) and must not be overwritten by stale data.
  const sig = JSON.stringify([data.thumbs.map(t => t.seed), (data.extra || []).map(t => t.seed), data.bins, data.version]);
  if (board.dataset.sig === sig) return;
  const fromPython = board.dataset.version !== String(data.version) || !board._assignment;
  board.dataset.sig = sig;
  board.dataset.version = String(data.version);
  const source = fromPython ? (data.assignment || []) : board._assignment;
  board._assignment = data.bins.map((_, i) => (source[i] || []).slice());
  board._selected = null;  // {seed, from} picked by a click, waiting for a click on a bin

  const srcBySeed = new Map([...data.thumbs, ...(data.extra || [])].map(t => [t.seed, t.src]));
  const palette = board.querySelector('.palette');
  const binsEl = board.querySelector('.bins');

  function commit() {
    setStateValue('assignment', board._assignment.map(a => a.slice()));
    render();
  }
  function move(seed, from, to) {
    seed = Number(seed);
    const assignment = board._assignment;
    if (from !== null && from !== undefined && from >= 0 && assignment[from]) {
      const i = assignment[from].indexOf(seed);
      if (i >= 0) assignment[from].splice(i, 1);
    }
    if (to !== null && to >= 0 && assignment[to] && !assignment[to].includes(seed)) assignment[to].push(seed);
    board._selected = null;
    commit();
  }
  function isSelected(seed, from) {
    const s = board._selected;
    return !!s && s.seed === seed && s.from === from;
  }
  function thumb(seed, from) {
    const img = document.createElement('img');
    img.className = 'thumb' + (isSelected(seed, from) ? ' selected' : '');
    img.src = srcBySeed.get(seed) || '';
    img.alt = 'seed ' + seed;
    img.title = 'seed ' + seed;
    img.draggable = true;
    img.dataset.seed = seed;
    img.dataset.from = from;
    img.addEventListener('dragstart', e => {
      board._cancel();  // the browser's own drag takes over: no pointer drag on top of it
      e.dataTransfer.setData('text/plain', JSON.stringify({ seed, from }));
      e.dataTransfer.effectAllowed = 'move';
    });
    img.addEventListener('pointerdown', e => board._start(e, seed, from));
    img.addEventListener('click', () => {
      board._selected = isSelected(seed, from) ? null : { seed, from };
      render();
    });
    return img;
  }
  function binAt(el) {
    const bin = el && el.closest ? el.closest('.bin') : null;
    if (bin) return Number(bin.dataset.bin);
    if (el && el.closest && el.closest('.palette')) return -1;
    return null;
  }

  // ---- pointer-event drag (touch, pen, synthetic mouse moves); state lives on the board element
  board._start = (e, seed, from) => {
    if (e.button !== undefined && e.button !== 0) return;
    board._drag = { seed, from, x: e.clientX, y: e.clientY, ghost: null, id: e.pointerId };
  };
  board._cancel = () => {
    if (board._drag && board._drag.ghost) board._drag.ghost.remove();
    board._drag = null;
    board.querySelectorAll('.bin.over').forEach(b => b.classList.remove('over'));
  };
  board._move = e => {
    const drag = board._drag;
    if (!drag || e.pointerId !== drag.id) return;
    if (!drag.ghost) {
      if (Math.hypot(e.clientX - drag.x, e.clientY - drag.y) < 6) return;
      drag.ghost = document.createElement('img');
      drag.ghost.className = 'ghost';
      drag.ghost.src = srcBySeed.get(drag.seed) || '';
      board.appendChild(drag.ghost);
    }
    drag.ghost.style.left = (e.clientX - 24) + 'px';
    drag.ghost.style.top = (e.clientY - 24) + 'px';
    const target = binAt(parentElement.elementFromPoint(e.clientX, e.clientY));
    board.querySelectorAll('.bin').forEach(b => b.classList.toggle('over', Number(b.dataset.bin) === target));
  };
  board._up = e => {
    const drag = board._drag;
    if (!drag || e.pointerId !== drag.id) return;
    const dragged = !!drag.ghost;
    board._cancel();
    if (!dragged) return;  // a click: the click listener handles it
    const to = binAt(parentElement.elementFromPoint(e.clientX, e.clientY));
    if (to !== null && to !== drag.from) move(drag.seed, drag.from, to);
  };
  board._click = e => {
    // with a sample click-selected, a click on a bin (not on a sample or button in it) drops it there
    const s = board._selected;
    if (!s || e.target.closest('.thumb') || e.target.closest('button')) return;
    const to = binAt(e.target);
    if (to !== null && to !== s.from) move(s.seed, s.from, to);
  };
  if (!board.dataset.listening) {  // once per board element; the handlers above are swapped per build
    board.dataset.listening = '1';
    board.addEventListener('pointermove', e => board._move(e));
    board.addEventListener('pointerup', e => board._up(e));
    board.addEventListener('pointercancel', () => board._cancel());
    board.addEventListener('click', e => board._click(e), true);
  }

  function dropZone(el, index) {
    el.ondragover = e => { e.preventDefault(); el.classList.add('over'); };
    el.ondragleave = () => el.classList.remove('over');
    el.ondrop = e => {
      e.preventDefault();
      el.classList.remove('over');
      let payload;
      try { payload = JSON.parse(e.dataTransfer.getData('text/plain')); } catch (err) { return; }
      if (payload.from !== index) move(payload.seed, payload.from, index);
    };
  }

  function render() {
    palette.replaceChildren(...data.thumbs.map(t => thumb(t.seed, -1)));
    binsEl.replaceChildren(...data.bins.map((b, i) => {
      const el = document.createElement('div');
      el.className = 'bin';
      el.dataset.bin = i;
      el.dataset.name = b.name;
      const title = document.createElement('div');
      title.className = 'bin-title';
      title.textContent = b.label + ' (' + board._assignment[i].length + ')';
      const items = document.createElement('div');
      items.className = 'bin-items';
      items.replaceChildren(...board._assignment[i].map(seed => {
        const chip = document.createElement('div');
        chip.className = 'chip';
        const x = document.createElement('button');
        x.textContent = '×';
        x.title = 'remove seed ' + seed;
        x.addEventListener('click', e => { e.stopPropagation(); move(seed, i, null); });
        chip.append(thumb(seed, i), x);
        return chip;
      }));
      el.append(title, items);
      dropZone(el, i);
      return el;
    }));
  }
  dropZone(palette, -1);
  render();
}
