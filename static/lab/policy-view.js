// What the mesh's and the gateway's policy editors draw alike: the fields a
// proxy's owner refused, and the diff of the HAProxy configuration it generated.

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text != null) node.textContent = text;
  return node;
}

/** Return an alert list of refusals: [field, reason] pairs, or plain messages. */
export function refusalList(lines, listClass, fieldClass) {
  const list = element("ul", { class: listClass, role: "alert" });
  for (const line of lines) {
    const item = element("li");
    if (Array.isArray(line)) {
      item.append(element("code", { class: fieldClass }, line[0]), document.createTextNode(` ${line[1]}`));
    } else {
      item.textContent = line;
    }
    list.append(item);
  }
  return list;
}

/** Return a disclosure showing one unified diff, its lines marked added, removed or context. */
export function diffDetails(name, diff, detailsClass, open = false) {
  const details = element("details", open ? { class: detailsClass, open: "" } : { class: detailsClass });
  details.append(element("summary", {}, name));
  const pre = element("pre");
  for (const line of diff.split("\n")) {
    const kind = line.startsWith("+") && !line.startsWith("+++") ? "add" : line.startsWith("-") && !line.startsWith("---") ? "del" : "ctx";
    pre.append(element("span", { class: `diff-${kind}` }, `${line}\n`));
  }
  details.append(pre);
  return details;
}
