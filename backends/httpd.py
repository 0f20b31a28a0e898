"""The seed's Flask backend: answers MSG from the environment."""
import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return os.environ.get("MSG", "Hello, World!")
