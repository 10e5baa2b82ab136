// chart.mjs: a small SVG area chart of the last minutes, drawn by hand.

const NS = 'http://www.w3.org/2000/svg';
const W = 300; // viewBox width; the SVG stretches to its box
const H = 48;

// Chart is one labelled chart in a container.
export class Chart {
  constructor(parent, name, label, format) {
    this.format = format;
    this.root = document.createElement('div');
    this.root.className = 'chart';
    this.root.dataset.name = name;
    const head = document.createElement('div');
    head.className = 'label';
    this.labelMax = document.createElement('span');
    head.append(label, this.labelMax);
    this.value = document.createElement('div');
    this.value.className = 'value';
    this.svg = document.createElementNS(NS, 'svg');
    this.svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    this.svg.setAttribute('preserveAspectRatio', 'none');
    this.area = document.createElementNS(NS, 'polygon');
    this.line = document.createElementNS(NS, 'polyline');
    this.svg.append(this.area, this.line);
    this.root.append(head, this.value, this.svg);
    parent.append(this.root);
  }

  // draw plots values (oldest first) over span points, right-aligned.
  draw(values, span) {
    const max = Math.max(1, ...values);
    const step = W / Math.max(1, span - 1);
    const x0 = W - (values.length - 1) * step;
    const pts = values.map((v, i) => `${(x0 + i * step).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`);
    this.line.setAttribute('points', pts.join(' '));
    this.area.setAttribute('points', pts.length ? `${x0.toFixed(1)},${H} ${pts.join(' ')} ${W},${H}` : '');
    this.value.textContent = values.length ? this.format(values[values.length - 1]) : '–';
    this.labelMax.textContent = 'max ' + this.format(Math.max(0, ...values));
  }
}
