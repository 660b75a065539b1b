"""Render the kustomizations under deploy/k8s in Python, for tests (no kustomize binary in CI).

Only the features the repository uses are implemented, and anything else in a kustomization.yaml is refused
(KustomizeFeatureError) rather than silently ignored, so a rendering here is what `kubectl kustomize` would give:
  resources (files and directories), components, namespace, images (newName/newTag/digest),
  patches (by path or inline) as strategic-merge patches matched on kind + metadata.name, including `$patch: delete`.
Strategic merge here: maps merge recursively, `null` deletes a key, lists of maps that all carry `name` merge by
name (containers, env, ports, volumes), any other list is replaced.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "components", "namespace", "images", "patches"}
PATCH_KEYS = {"path", "patch"}
IMAGE_KEYS = {"name", "newName", "newTag", "digest"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}


class KustomizeFeatureError(ValueError):
    """The kustomization uses something this renderer does not implement (extend it, or simplify the overlay)."""


def load_docs(path: Path) -> list[Obj]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _kustomization(directory: Path) -> Obj:
    docs = load_docs(directory / "kustomization.yaml")
    if len(docs) != 1:
        raise KustomizeFeatureError(f"{directory}/kustomization.yaml must hold exactly one document")
    spec = docs[0]
    unknown = set(spec) - KUSTOMIZATION_KEYS
    if unknown:
        raise KustomizeFeatureError(f"{directory}/kustomization.yaml: unsupported fields {sorted(unknown)}")
    return spec


def _identity(obj: Obj) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def strategic_merge(target: Any, patch: Any) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            if key.startswith("$"):
                raise KustomizeFeatureError(f"directive {key} is only supported at the top of a patch")
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in target + patch)
    ):
        merged_list = [copy.deepcopy(item) for item in target]
        for item in patch:
            for i, existing in enumerate(merged_list):
                if existing["name"] == item["name"]:
                    merged_list[i] = strategic_merge(existing, item)
                    break
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _apply_patches(objects: list[Obj], spec: Obj, directory: Path) -> list[Obj]:
    for entry in spec.get("patches", []):
        unknown = set(entry) - PATCH_KEYS
        if unknown:
            raise KustomizeFeatureError(f"{directory}: patch fields {sorted(unknown)} (e.g. target) not supported")
        docs = load_docs(directory / entry["path"]) if "path" in entry else list(yaml.safe_load_all(entry["patch"]))
        if len(docs) != 1:
            raise KustomizeFeatureError(f"{directory}: one patch per file/entry, got {len(docs)}")
        patch = dict(docs[0])
        directive = patch.pop("$patch", None)
        if directive not in (None, "delete"):
            raise KustomizeFeatureError(f"{directory}: $patch: {directive} not supported")
        matches = [i for i, obj in enumerate(objects) if _identity(obj) == _identity(patch)]
        if len(matches) != 1:
            raise KustomizeFeatureError(f"{directory}: patch {_identity(patch)} matches {len(matches)} objects")
        if directive == "delete":
            del objects[matches[0]]
        else:
            objects[matches[0]] = strategic_merge(objects[matches[0]], patch)
    return objects


def _pod_specs(obj: Obj) -> list[Obj]:
    spec = obj.get("spec", {})
    if "template" in spec:
        return [spec["template"].get("spec", {})]
    if "jobTemplate" in spec:
        return [spec["jobTemplate"]["spec"]["template"].get("spec", {})]
    if obj["kind"] == "Pod":
        return [spec]
    return []


def _split_image(image: str) -> tuple[str, str, str]:
    """name, tag, digest (tag/digest empty when absent); a registry port is not a tag."""
    name, _, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = ""
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest


def _apply_images(objects: list[Obj], spec: Obj, directory: Path) -> None:
    for rule in spec.get("images", []):
        unknown = set(rule) - IMAGE_KEYS
        if unknown:
            raise KustomizeFeatureError(f"{directory}: images fields {sorted(unknown)} not supported")
        for obj in objects:
            for pod in _pod_specs(obj):
                for container in pod.get("containers", []) + pod.get("initContainers", []):
                    name, tag, digest = _split_image(container["image"])
                    if name != rule["name"]:
                        continue
                    name = rule.get("newName", name)
                    if "digest" in rule:
                        container["image"] = f"{name}@{rule['digest']}"
                    elif "newTag" in rule:
                        container["image"] = f"{name}:{rule['newTag']}"
                    else:
                        container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _transform(objects: list[Obj], spec: Obj, directory: Path) -> list[Obj]:
    """In kustomize's order of built-in transformers: patches, then namespace, then images."""
    objects = _apply_patches(objects, spec, directory)
    if "namespace" in spec:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = spec["namespace"]
    _apply_images(objects, spec, directory)
    return objects


def render(directory: Path, extra_components: tuple[Path, ...] = ()) -> list[Obj]:
    """The objects `kubectl kustomize <directory>` would print (plus extra components, as if listed last)."""
    directory = directory.resolve()
    spec = _kustomization(directory)
    objects: list[Obj] = []
    for resource in spec.get("resources", []):
        path = (directory / resource).resolve()
        objects.extend(render(path) if path.is_dir() else copy.deepcopy(load_docs(path)))
    for component in [directory / c for c in spec.get("components", [])] + list(extra_components):
        component = component.resolve()
        comp_spec = _kustomization(component)
        if comp_spec.get("kind") != "Component":
            raise KustomizeFeatureError(f"{component} is listed as a component but is a {comp_spec.get('kind')}")
        for resource in comp_spec.get("resources", []):
            objects.extend(copy.deepcopy(load_docs(component / resource)))
        objects = _transform(objects, comp_spec, component)
    objects = _transform(objects, spec, directory)
    seen: set[tuple[str, str]] = set()
    for obj in objects:
        if _identity(obj) in seen:
            raise KustomizeFeatureError(f"{directory}: {_identity(obj)} defined twice")
        seen.add(_identity(obj))
    return objects
