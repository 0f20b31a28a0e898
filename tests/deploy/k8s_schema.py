"""Validates Kubernetes manifests offline against the API's models.

The models are those of the Kubernetes Python client (Debian's python3-kubernetes),
generated from the API's OpenAPI spec: every field must be one the model knows,
of the type it declares, and every required field present. Prints the parsed
documents as JSON on stdout; exits 1 with one line per problem on stderr.

Usage: python3 k8s_schema.py FILE.yaml...
"""
import json
import re
import sys

import kubernetes.client as models
import yaml

SCALARS = {
    "str": str,
    "int": int,
    "float": (int, float),
    "bool": bool,
    "datetime": str,
    "date": str,
}


def check(value, type_name, path, problems):
    """Checks `value` against the client's type string, e.g. `list[V1Container]`."""
    listed = re.fullmatch(r"list\[(.+)\]", type_name)
    mapped = re.fullmatch(r"dict\(([^,]+), (.+)\)", type_name)
    if listed:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {value!r}")
            return
        for i, item in enumerate(value):
            check(item, listed.group(1), f"{path}[{i}]", problems)
    elif mapped:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a map, got {value!r}")
            return
        for key, item in value.items():
            check(item, mapped.group(2), f"{path}.{key}", problems)
    elif type_name == "object":
        pass  # IntOrString, Quantity and other free-form fields
    elif type_name in SCALARS:
        wanted = SCALARS[type_name]
        if isinstance(value, bool) and type_name != "bool" or not isinstance(value, wanted):
            problems.append(f"{path}: expected {type_name}, got {value!r}")
    else:
        check_model(value, getattr(models, type_name), path, problems)


def check_model(value, model, path, problems):
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a {model.__name__} object, got {value!r}")
        return
    by_key = {key: attr for attr, key in model.attribute_map.items()}
    known = {}
    for key, item in value.items():
        attr = by_key.get(key)
        if attr is None:
            problems.append(f"{path}.{key}: not a field of {model.__name__}")
            continue
        known[attr] = item
        check(item, model.openapi_types[attr], f"{path}.{key}", problems)
    try:
        model(**known)  # the setters refuse a missing required field
    except ValueError as error:
        problems.append(f"{path}: {model.__name__}: {error}")


def main(files):
    problems = []
    documents = []
    for name in files:
        with open(name) as stream:
            for i, doc in enumerate(yaml.safe_load_all(stream)):
                if doc is None:
                    continue
                where = f"{name}#{i}"
                group, _, version = doc.get("apiVersion", "").rpartition("/")
                model = getattr(models, f"{version.capitalize()}{doc.get('kind', '')}", None)
                if model is None:
                    problems.append(f"{where}: unknown kind {doc.get('apiVersion')} {doc.get('kind')}")
                    continue
                check_model(doc, model, where, problems)
                documents.append({"file": name, "document": doc})
    json.dump(documents, sys.stdout)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
