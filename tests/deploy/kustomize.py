"""A small kustomize renderer for the subset deploy/k8s uses (`kubectl` is not installed in
CI): resources (files and directories), namespace, labels, images, replicas, and patches
(JSON 6902 with a target, or strategic merge by kind and name)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def render(directory: Path) -> list[Manifest]:
    spec = yaml.safe_load((directory / "kustomization.yaml").read_text())
    known = {
        "apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches",
    }  # fmt: skip
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"{directory}: kustomization fields this renderer lacks: {unknown}")
    manifests: list[Manifest] = []
    for entry in spec.get("resources", []):
        path = directory / entry
        if path.is_dir():
            manifests += render(path)
        else:
            manifests += [d for d in yaml.safe_load_all(path.read_text()) if d]
    for patch in spec.get("patches", []):
        _apply_patch(directory, manifests, patch)
    for image in spec.get("images", []):
        _set_image(manifests, image)
    for replica in spec.get("replicas", []):
        for m in _select(manifests, {"name": replica["name"]}):
            if m["kind"] in ("Deployment", "StatefulSet"):
                m["spec"]["replicas"] = replica["count"]
    for group in spec.get("labels", []):
        for m in manifests:
            m["metadata"].setdefault("labels", {}).update(group["pairs"])
            template = m.get("spec", {}).get("template") if m["kind"] != "KafkaTopic" else None
            if isinstance(template, dict) and group.get("includeTemplates", False):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(group["pairs"])
    if "namespace" in spec:
        for m in manifests:
            if m["kind"] not in CLUSTER_SCOPED:
                m["metadata"]["namespace"] = spec["namespace"]
            elif m["kind"] == "Namespace":
                m["metadata"]["name"] = spec["namespace"]
    return manifests


def _select(manifests: list[Manifest], target: dict[str, str]) -> list[Manifest]:
    return [
        m
        for m in manifests
        if target.get("kind", m["kind"]) == m["kind"]
        and target.get("name", m["metadata"]["name"]) == m["metadata"]["name"]
    ]


def _apply_patch(directory: Path, manifests: list[Manifest], patch: dict[str, Any]) -> None:
    text = patch.get("patch") or (directory / patch["path"]).read_text()
    body = yaml.safe_load(text)
    if isinstance(body, list):  # JSON 6902
        targets = _select(manifests, patch["target"])
        if not targets:
            raise ValueError(f"patch target matches nothing: {patch['target']}")
        for m in targets:
            for op in body:
                _json_patch(m, op)
        return
    target = {"kind": body["kind"], "name": body["metadata"]["name"]}
    targets = _select(manifests, target)
    if len(targets) != 1:
        raise ValueError(f"strategic merge patch matches {len(targets)} resources: {target}")
    _merge(targets[0], body)


def _json_patch(doc: Manifest, op: dict[str, Any]) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    index: Any = int(last) if isinstance(node, list) else last
    if op["op"] == "remove":
        del node[index]
    elif op["op"] == "replace":
        if isinstance(node, dict) and index not in node:
            raise ValueError(f"replace of a missing path {op['path']}")
        node[index] = copy.deepcopy(op["value"])
    elif op["op"] == "add":
        if isinstance(node, list):
            node.insert(index, copy.deepcopy(op["value"]))
        else:
            node[index] = copy.deepcopy(op["value"])
    else:
        raise ValueError(f"unsupported patch op {op['op']}")


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge, simplified: maps merge, lists of named maps merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        for key, value in patch.items():
            base[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return base
    if (
        isinstance(base, list)
        and isinstance(patch, list)
        and all(isinstance(i, dict) and "name" in i for i in base + patch)
    ):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            if item["name"] in by_name:
                _merge(by_name[item["name"]], item)
            else:
                base.append(copy.deepcopy(item))
        return base
    return copy.deepcopy(patch)


def _set_image(manifests: list[Manifest], image: dict[str, str]) -> None:
    for m in manifests:
        template = m.get("spec", {}).get("template", {})
        if not isinstance(template, dict):
            continue
        for container in template.get("spec", {}).get("containers", []):
            name, _, _tag = container["image"].partition(":")
            if name == image["name"]:
                new_name = image.get("newName", name)
                container["image"] = f"{new_name}:{image.get('newTag', _tag)}"
