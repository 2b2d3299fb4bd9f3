// Hover previews for plotly plots (see ui/hover.py): a floating <img> showing static/thumbs/.../<index>.png
// for the point under the mouse, for traces whose `meta` is the page's marker.
export default function ({ data }) {
  // One floating <img> and one hook per plot for the whole page; repeated calls only update the settings.
  const state = (window.__latentLabHover = window.__latentLabHover || {});
  state.prefix = data.prefix;
  state.meta = data.meta;
  if (!state.img) {
    state.img = document.createElement('img');
    Object.assign(state.img.style, {
      position: 'fixed', pointerEvents: 'none', zIndex: 100000, width: '96px', height: '96px', display: 'none',
      imageRendering: 'pixelated', border: '2px solid white', boxShadow: '0 2px 8px rgba(0,0,0,0.4)', borderRadius: '4px',
    });
    state.img.className = 'latent-lab-hover-thumb';
    document.body.appendChild(state.img);
  }
  const hide = () => { state.img.style.display = 'none'; };
  const hook = () => {
    document.querySelectorAll('.js-plotly-plot').forEach(gd => {
      if (gd.__latentLabHover || typeof gd.on !== 'function') return;
      gd.__latentLabHover = true;
      gd.on('plotly_hover', ev => {
        const p = ev.points && ev.points[0];
        if (!p || p.customdata === undefined || p.customdata === null || !p.data || p.data.meta !== state.meta) return;
        const index = Array.isArray(p.customdata) ? p.customdata[0] : p.customdata;
        state.img.src = state.prefix + index + '.png';
        const e = ev.event || {};
        state.img.style.left = ((e.clientX || 0) + 16) + 'px';
        state.img.style.top = ((e.clientY || 0) + 16) + 'px';
        state.img.style.display = 'block';
      });
      gd.on('plotly_unhover', hide);
    });
  };
  hook();
  // Plots re-render (new elements) on reruns: keep looking for unhooked ones while this page is open.
  if (!state.timer) state.timer = setInterval(() => {
    if (!document.querySelector('.js-plotly-plot')) hide();
    hook();
  }, 500);
}
